package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"shardlog/bench"
)

// Exit statuses of `shardlog bench` and its subcommands.
const (
	// benchExitOK: the run completed without errors.
	benchExitOK = 0
	// benchExitErrors: the run completed but records or reads failed.
	benchExitErrors = 1
	// benchExitUsage: bad flags.
	benchExitUsage = 2
	// benchExitFailed: the run could not complete (cluster did not start, topic not
	// created, a shard did not fail over...).
	benchExitFailed = 3
)

// cmdBench is `shardlog bench`: one workload, or with a first argument matrix, scale
// or failover that benchmark. Ctrl-C ends the run; it reports what it measured.
func cmdBench(ctx context.Context, e *env, _ globals, args []string) error {
	return exitCode(benchMain(ctx, args, e.stdout, e.stderr))
}

// benchMain is cmdBench with its exit status.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "matrix":
			return benchMatrixMain(ctx, args[1:], stdout, stderr)
		case "scale":
			return benchScaleMain(ctx, args[1:], stdout, stderr)
		case "failover":
			return benchFailoverMain(ctx, args[1:], stdout, stderr)
		}
	}
	cfg, o, ok := benchFlags(args, stderr)
	if !ok {
		return benchExitUsage
	}
	stopProfiles, err := startProfiles(o.cpuProfile, o.memProfile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return benchExitUsage
	}
	rep, err := bench.Run(ctx, cfg)
	if perr := stopProfiles(); perr != nil {
		fmt.Fprintln(stderr, perr)
	}
	return benchFinish(stdout, stderr, rep, err, o.json, func(r *bench.Report) uint64 { return r.Errors }, bench.WriteText)
}

// benchFinish prints a run's report (JSON or text) when there is one and turns the
// outcome into the exit status; errCount reads the report's error count.
func benchFinish[R any](stdout, stderr io.Writer, rep *R, err error, asJSON bool, errCount func(*R) uint64, text func(io.Writer, *R)) int {
	if errors.Is(err, bench.ErrUsage) {
		fmt.Fprintln(stderr, err)
		return benchExitUsage
	}
	var n uint64
	if rep != nil {
		n = errCount(rep)
		if asJSON {
			printReportJSON(stdout, rep)
		} else {
			text(stdout, rep)
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return benchExitFailed
	case n > 0:
		fmt.Fprintf(stderr, "bench: %d errors\n", n)
		return benchExitErrors
	}
	return benchExitOK
}

// benchOptions are `shardlog bench`'s flags that are not part of bench.Config.
type benchOptions struct {
	json                   bool
	cpuProfile, memProfile string
}

// benchFlags turns args into a Config; it reports problems on stderr and ok=false.
func benchFlags(args []string, stderr io.Writer) (cfg bench.Config, o benchOptions, ok bool) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shardlog bench [flags]      measure one workload")
		fmt.Fprintln(stderr, "       shardlog bench matrix [flags] run the standard matrix (see shardlog bench matrix -h)")
		fmt.Fprintln(stderr, "       shardlog bench scale [flags]  many shards: create time, idle cost, active-shard throughput (see shardlog bench scale -h)")
		fmt.Fprintln(stderr, "       shardlog bench failover [flags] kill shard leaders' nodes under load: time until writes resume (see shardlog bench failover -h)")
		fs.PrintDefaults()
	}
	w := bench.DefaultWorkload()
	servers := defineWorkloadFlags(fs, &cfg, &w)
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the client's CPU profile to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write the client's heap profile to this file at the end")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return cfg, o, false
	}
	if err := extraArgs(fs.Args()); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, o, false
	}
	if err := finishBenchConfig(&cfg, &w, *servers, flagGiven(fs, "replication-factor"), *verbose, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, o, false
	}
	return cfg, o, true
}

// defineWorkloadFlags defines the flags shared by `bench` and `bench matrix` and
// returns the --server value.
func defineWorkloadFlags(fs *flag.FlagSet, cfg *bench.Config, w *bench.Workload) *string {
	cfg.Nodes, cfg.ServerLogLevel = 3, "warn"
	servers := defineClusterFlags(fs, cfg, "client addresses host:port[,host:port] of an existing cluster (default: start one)",
		"topic to create (default bench-<time>)")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "also measure the segment store alone and replication factor 1")
	fs.IntVar(&w.Shards, "shards", w.Shards, "shards of the topic")
	fs.IntVar(&w.ReplicationFactor, "replication-factor", w.ReplicationFactor, "replication factor of the topic (default 3, at most --nodes)")
	fs.IntVar(&w.RecordSize, "record-size", w.RecordSize, "record value size in bytes")
	fs.Func("keys", "key distribution: none, uniform:N or zipf:N (default none)", func(s string) error {
		d, err := bench.ParseKeyDist(s)
		w.Keys = d
		return err
	})
	fs.Float64Var(&w.Compressibility, "compressibility", w.Compressibility, "fraction of each value a compressor can remove, 0..1 (0: incompressible)")
	fs.IntVar(&w.Producers, "producers", w.Producers, "producer clients")
	fs.IntVar(&w.BatchSize, "batch-size", w.BatchSize, "producer batch size in bytes")
	fs.DurationVar(&w.Linger, "linger", w.Linger, "producer linger")
	fs.IntVar(&w.InFlight, "inflight", w.InFlight, "batches in flight per shard and producer (at most 16)")
	fs.IntVar(&w.BufferBytes, "buffer", w.BufferBytes, "bytes each producer may hold unacknowledged (0: the client's default, 64 MiB)")
	fs.IntVar(&w.Consumers, "consumers", w.Consumers, "consumer clients, tailing during the produce phase and then reading the backlog (0: no consume phases)")
	fs.DurationVar(&w.Duration, "duration", w.Duration, "length of the produce phase (unless --records)")
	fs.Int64Var(&w.Records, "records", 0, "records to produce in total (0: as many as --duration allows)")
	fs.StringVar(&w.Compression, "compression", w.Compression, "batch compression: none, s2 or zstd")
	fs.Float64Var(&w.Rate, "rate", 0, "fixed total send rate in records/s, latency measured from each record's intended send time (0: closed loop)")
	fs.Uint64Var(&w.Seed, "seed", 1, "seed of payloads and keys")
	fs.DurationVar(&w.BacklogTimeout, "backlog-timeout", 60*time.Second, "bound on reading the backlog")
	return servers
}

// finishBenchConfig completes cfg after flag parsing and validates its workload.
func finishBenchConfig(cfg *bench.Config, w *bench.Workload, servers string, rfSet, verbose bool, stderr io.Writer) error {
	completeBenchConfig(cfg, servers, verbose, stderr)
	fitReplicationFactor(cfg, &w.ReplicationFactor, rfSet)
	cfg.Workload = *w
	return cfg.Workload.Validate()
}

// defineClusterFlags defines the flags that say which cluster to run against (or
// start) on fs, writing into c; c's Nodes and ServerLogLevel are the defaults.
// serverHelp and topicHelp describe --server and --topic for the command. It returns
// the --server value, which completeBenchConfig splits.
func defineClusterFlags(fs *flag.FlagSet, c *bench.Config, serverHelp, topicHelp string) *string {
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "server processes to start on 127.0.0.1 (without --server)")
	servers := fs.String("server", "", serverHelp)
	fs.StringVar(&c.Binary, "binary", "", "shardlog binary for started servers (default: this executable if it is shardlog, else bin/shardlog)")
	fs.StringVar(&c.Dir, "dir", "", "parent of the started cluster's directory (default the system temp dir)")
	fs.StringVar(&c.ServerLogLevel, "server-log-level", c.ServerLogLevel, "started servers' --log-level")
	fs.Func("server-args", "extra flags for every started server, space separated (e.g. \"--logdb tan\")", func(s string) error {
		c.ServerArgs = strings.Fields(s)
		return nil
	})
	fs.StringVar(&c.Topic, "topic", "", topicHelp)
	fs.BoolVar(&c.Keep, "keep", false, "keep the topic (and a started cluster's directory) after the run")
	return servers
}

// completeBenchConfig finishes c after parsing: the --server list, the default binary
// and the logger.
func completeBenchConfig(c *bench.Config, servers string, verbose bool, stderr io.Writer) {
	for s := range strings.SplitSeq(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Servers = append(c.Servers, s)
		}
	}
	if c.Binary == "" {
		c.Binary = defaultServerBinary()
	}
	c.Logger = harnessLogger(stderr, verbose)
}

// fitReplicationFactor lowers *rf to the number of nodes the harness starts when
// --replication-factor was not given (rfSet false), so `--nodes 1` works alone.
func fitReplicationFactor(c *bench.Config, rf *int, rfSet bool) {
	if len(c.Servers) == 0 && !rfSet && c.Nodes > 0 && *rf > c.Nodes {
		*rf = c.Nodes
	}
}

// flagGiven reports whether the flag called name was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// extraArgs refuses positional arguments.
func extraArgs(a []string) error {
	if len(a) == 0 {
		return nil
	}
	return fmt.Errorf("bench: unexpected arguments %q", a)
}

// startProfiles starts the client CPU profile and returns the function that stops it
// and writes the heap profile.
func startProfiles(cpuPath, memPath string) (func() error, error) {
	var cpuFile *os.File
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		cpuFile = f
	}
	return func() error {
		var errs []error
		if cpuFile != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpuFile.Close())
		}
		if memPath != "" {
			f, err := os.Create(memPath)
			if err != nil {
				return errors.Join(append(errs, fmt.Errorf("bench: --memprofile: %w", err))...)
			}
			runtime.GC()
			errs = append(errs, pprof.WriteHeapProfile(f), f.Close())
		}
		return errors.Join(errs...)
	}, nil
}
