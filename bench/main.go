package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

// Exit statuses of Main.
const (
	// ExitOK: the run completed without errors.
	ExitOK = 0
	// ExitErrors: the run completed but records or reads failed.
	ExitErrors = 1
	// ExitUsage: bad flags.
	ExitUsage = 2
	// ExitFailed: the run could not complete (cluster did not start, topic not created...).
	ExitFailed = 3
)

// Main is `shardlog bench`: it parses args, runs the benchmark and prints the report to
// stdout (a table, or JSON with --json); progress goes to stderr. `shardlog bench
// matrix ...` runs the standard matrix instead (see MatrixMain), `shardlog bench scale
// ...` the many-shards benchmark (see ScaleMain) and `shardlog bench failover ...` the
// leader-kill benchmark (see FailoverMain). It returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "matrix" {
		return MatrixMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "scale" {
		return ScaleMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "failover" {
		return FailoverMain(args[1:], stdout, stderr)
	}
	cfg, o, ok := parseFlags(args, stderr)
	if !ok {
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfiles, err := startProfiles(o.cpuProfile, o.memProfile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	rep, err := Run(ctx, cfg)
	if perr := stopProfiles(); perr != nil {
		fmt.Fprintln(stderr, perr)
	}
	if errors.Is(err, ErrUsage) {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	var errCount uint64
	if rep != nil {
		errCount = rep.Errors
	}
	return finish(stdout, stderr, rep, errCount, err, o.json, WriteText)
}

// finish prints a run's report (JSON or text) when there is one and turns the
// outcome into Main's exit status.
func finish[R any](stdout, stderr io.Writer, rep *R, errCount uint64, err error, asJSON bool, text func(io.Writer, *R)) int {
	if rep != nil {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			text(stdout, rep)
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return ExitFailed
	case errCount > 0:
		fmt.Fprintf(stderr, "bench: %d errors\n", errCount)
		return ExitErrors
	}
	return ExitOK
}

// options are Main's flags that are not part of Config.
type options struct {
	json                   bool
	cpuProfile, memProfile string
}

// parseFlags turns args into a Config; it reports problems on stderr and ok=false.
func parseFlags(args []string, stderr io.Writer) (cfg Config, o options, ok bool) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shardlog bench [flags]      measure one workload")
		fmt.Fprintln(stderr, "       shardlog bench matrix [flags] run the standard matrix (see shardlog bench matrix -h)")
		fmt.Fprintln(stderr, "       shardlog bench scale [flags]  many shards: create time, idle cost, active-shard throughput (see shardlog bench scale -h)")
		fmt.Fprintln(stderr, "       shardlog bench failover [flags] kill shard leaders' nodes under load: time until writes resume (see shardlog bench failover -h)")
		fs.PrintDefaults()
	}
	w := DefaultWorkload()
	servers := addFlags(fs, &cfg, &w)
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the client's CPU profile to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write the client's heap profile to this file at the end")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return cfg, o, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return cfg, o, false
	}
	if err := finishConfig(&cfg, &w, *servers, flagSet(fs, "replication-factor"), *verbose, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, o, false
	}
	return cfg, o, true
}

// addFlags defines the flags shared by Main and MatrixMain and returns the --server value.
func addFlags(fs *flag.FlagSet, cfg *Config, w *Workload) *string {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.ServerLogLevel == "" {
		cfg.ServerLogLevel = "warn"
	}
	servers := defineClusterFlags(fs, cfg, "client addresses host:port[,host:port] of an existing cluster (default: start one)",
		"topic to create (default bench-<time>)")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "also measure the segment store alone and replication factor 1")
	fs.IntVar(&w.Shards, "shards", w.Shards, "shards of the topic")
	fs.IntVar(&w.ReplicationFactor, "replication-factor", w.ReplicationFactor, "replication factor of the topic (default 3, at most --nodes)")
	fs.IntVar(&w.RecordSize, "record-size", w.RecordSize, "record value size in bytes")
	fs.Func("keys", "key distribution: none, uniform:N or zipf:N (default none)", func(s string) error {
		d, err := ParseKeyDist(s)
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

// finishConfig completes cfg after flag parsing.
func finishConfig(cfg *Config, w *Workload, servers string, rfSet, verbose bool, stderr io.Writer) error {
	completeConfig(cfg, servers, verbose, stderr)
	fitReplicationFactor(cfg, &w.ReplicationFactor, rfSet)
	cfg.Workload = *w
	return cfg.Workload.Validate()
}

// defaultBinary is this executable when it is shardlog, else bin/shardlog.
func defaultBinary() string {
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "shardlog" {
		return exe
	}
	return filepath.Join("bin", "shardlog")
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
