package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"shardlog/bench"
)

// benchMatrixMain is `shardlog bench matrix`: it runs the standard matrix on one
// cluster, writes JSON under --out and prints the markdown table to stdout.
func benchMatrixMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	mc, ok := matrixFlags(args, stderr)
	if !ok {
		return benchExitUsage
	}
	res, err := bench.RunMatrix(ctx, mc)
	if res != nil {
		bench.WriteMarkdown(stdout, res)
	}
	switch {
	case errors.Is(err, bench.ErrUsage):
		fmt.Fprintln(stderr, err)
		return benchExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return benchExitFailed
	}
	for _, r := range res.Runs {
		if r.Error != "" {
			return benchExitFailed
		}
		if r.Median != nil && r.Median.Errors > 0 {
			return benchExitErrors
		}
	}
	return benchExitOK
}

// matrixFlags turns args into a MatrixConfig; it reports problems on stderr and
// ok=false.
func matrixFlags(args []string, stderr io.Writer) (mc bench.MatrixConfig, ok bool) {
	fs := flag.NewFlagSet("bench matrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	w := bench.DefaultWorkload()
	w.Duration = 10 * time.Second
	w.BacklogTimeout = 20 * time.Second
	w.BufferBytes = 16 << 20
	servers := defineWorkloadFlags(fs, &mc.Config, &w)
	sizes := fs.String("record-sizes", "100,1024", "record sizes of the matrix")
	shards := fs.String("shard-counts", "1,8,64", "shard counts of the matrix")
	rfs := fs.String("replication-factors", "1,3", "replication factors of the matrix")
	fs.IntVar(&mc.LatencyShards, "latency-shards", 8, "shards of the fixed-rate latency runs")
	fs.Float64Var(&mc.LatencyFraction, "latency-fraction", 0.1, "rate of the latency runs as a fraction of the measured peak")
	fs.IntVar(&mc.Repeat, "repeat", 1, "runs per cell; the table shows the median")
	fs.StringVar(&mc.Out, "out", filepath.Join("bench", "results"), "directory for the JSON results and matrix.md")
	fs.StringVar(&mc.Doc, "doc", "", "markdown file whose "+bench.DocBegin+" ... "+bench.DocEnd+" block gets the table (make bench: docs/performance.md)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return mc, false
	}
	var err error
	parse := func(s, name string) []int {
		v, perr := parseInts(s)
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("%w: --%s: %v", bench.ErrUsage, name, perr))
		}
		return v
	}
	mc.RecordSizes = parse(*sizes, "record-sizes")
	mc.ShardCounts = parse(*shards, "shard-counts")
	mc.ReplicationFactors = parse(*rfs, "replication-factors")
	if err == nil {
		err = finishBenchConfig(&mc.Config, &w, *servers, true, *verbose, stderr)
	}
	if err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, errors.Join(err, extraArgs(fs.Args())))
		return mc, false
	}
	mc.Command = "shardlog bench matrix " + strings.Join(args, " ")
	return mc, true
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a list of positive integers", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// subFlags are the cluster and output flags shared by the subcommands that start
// their own cluster (`bench scale`, `bench failover`).
type subFlags struct {
	servers         *string
	asJSON, verbose *bool
}

// defineSubFlags defines the shared flags on fs, writing into c.
func defineSubFlags(fs *flag.FlagSet, c *bench.Config, serverHelp, topicHelp string) *subFlags {
	return &subFlags{
		servers: defineClusterFlags(fs, c, serverHelp, topicHelp),
		asJSON:  fs.Bool("json", false, "print the report as JSON"),
		verbose: fs.Bool("v", false, "debug logging"),
	}
}

// parse parses args, refusing positional arguments, and completes c. It reports
// false after printing why parsing failed.
func (f *subFlags) parse(fs *flag.FlagSet, args []string, c *bench.Config, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if err := extraArgs(fs.Args()); err != nil {
		fmt.Fprintln(stderr, err)
		return false
	}
	completeBenchConfig(c, *f.servers, *f.verbose, stderr)
	return true
}

// benchScaleMain is `shardlog bench scale`: it parses args, runs bench.RunScale and
// prints the report to stdout (a table, or JSON with --json).
func benchScaleMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sc := bench.DefaultScaleConfig()
	c := &sc.Config
	sf := defineSubFlags(fs, c, "client addresses host:port[,host:port] of an existing cluster (default: start one; servers are then not measured)",
		"topic to create (default scale-<time>)")
	fs.IntVar(&sc.Shards, "shards", sc.Shards, "shards of the topic")
	fs.IntVar(&sc.ReplicationFactor, "replication-factor", sc.ReplicationFactor, "replication factor of the topic (default 3, at most --nodes)")
	fs.DurationVar(&sc.Settle, "settle", sc.Settle, "wait after the topic has its leaders before the idle window")
	fs.DurationVar(&sc.Idle, "idle", sc.Idle, "idle window over which the servers' CPU is measured")
	fs.IntVar(&sc.Active, "active", sc.Active, "shards written in the main produce phase")
	fs.IntVar(&sc.Compare, "compare", sc.Compare, "shards written in the comparison produce phase")
	fs.DurationVar(&sc.Duration, "duration", sc.Duration, "length of each produce phase")
	fs.IntVar(&sc.RecordSize, "record-size", sc.RecordSize, "record value size in bytes")
	fs.IntVar(&sc.Producers, "producers", sc.Producers, "producer clients")
	fs.IntVar(&sc.BatchSize, "batch-size", sc.BatchSize, "producer batch size in bytes")
	fs.DurationVar(&sc.Linger, "linger", sc.Linger, "producer linger")
	fs.IntVar(&sc.InFlight, "inflight", sc.InFlight, "batches in flight per shard and producer")
	fs.IntVar(&sc.BufferBytes, "buffer", sc.BufferBytes, "bytes each producer may hold unacknowledged (0: the client's default)")
	fs.Uint64Var(&sc.Seed, "seed", sc.Seed, "seed of the payloads")
	if !sf.parse(fs, args, c, stderr) {
		return benchExitUsage
	}
	fitReplicationFactor(c, &sc.ReplicationFactor, flagGiven(fs, "replication-factor"))
	rep, err := bench.RunScale(ctx, sc)
	return benchFinish(stdout, stderr, rep, err, *sf.asJSON, func(r *bench.ScaleReport) uint64 { return r.Errors }, bench.WriteScaleText)
}

// benchFailoverMain is `shardlog bench failover`: it parses args, runs
// bench.RunFailover and prints the report to stdout (a table, or JSON with --json). It
// returns benchExitOK when the run completed and every affected shard resumed,
// whether or not the target was met, and benchExitFailed when a shard took no write
// within --timeout.
func benchFailoverMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fc := bench.DefaultFailoverConfig()
	c := &fc.Config
	sf := defineSubFlags(fs, c, "not supported: bench failover kills server processes, so it starts its own cluster",
		"topic to create (default failover-<time>)")
	fs.IntVar(&fc.Shards, "shards", fc.Shards, "shards of the topic")
	fs.IntVar(&fc.ReplicationFactor, "replication-factor", fc.ReplicationFactor, "replication factor of the topic (at least 3, at most --nodes)")
	fs.IntVar(&fc.RecordSize, "record-size", fc.RecordSize, "record value size in bytes")
	fs.Float64Var(&fc.Rate, "rate", fc.Rate, "total send rate in records/s, spread evenly over the shards")
	fs.IntVar(&fc.Kills, "kills", fc.Kills, "number of measured kills")
	fs.DurationVar(&fc.Settle, "settle", fc.Settle, "busy mode: steady traffic before each kill")
	fs.DurationVar(&fc.Timeout, "timeout", fc.Timeout, "longest wait for the affected shards to resume after a kill")
	fs.Uint64Var(&fc.Seed, "seed", fc.Seed, "seed of the payloads")
	fs.DurationVar(&fc.RequestTimeout, "request-timeout", fc.RequestTimeout, "busy mode: longest wait for one Produce call of the producer (a call to a stopped leader waits this long)")
	fs.StringVar(&fc.Signal, "signal", fc.Signal, "what hits the leader's node: kill (SIGKILL, then restart) or stop (SIGSTOP, then SIGCONT)")
	fs.BoolVar(&fc.Idle, "idle", fc.Idle, "idle mode: no load, the shards quiesce for --idle-wait, then the node leading the most shards is hit and each of its shards probed with one write")
	fs.DurationVar(&fc.IdleWait, "idle-wait", fc.IdleWait, "idle mode: time without writes before each kill (shards quiesce after 5 s with the servers' defaults)")
	fs.DurationVar(&fc.ProbeInterval, "probe-interval", fc.ProbeInterval, "idle mode: time between the starts of a probe write's attempts")
	fs.DurationVar(&fc.ProbeTimeout, "probe-timeout", fc.ProbeTimeout, "idle mode: longest wait for one attempt of a probe write")
	if !sf.parse(fs, args, c, stderr) {
		return benchExitUsage
	}
	rep, err := bench.RunFailover(ctx, fc)
	return benchFinish(stdout, stderr, rep, err, *sf.asJSON, func(r *bench.FailoverReport) uint64 { return r.Errors }, bench.WriteFailoverText)
}
