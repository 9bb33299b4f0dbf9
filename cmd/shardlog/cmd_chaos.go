package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"shardlog/chaos"
)

// Exit statuses of `shardlog chaos`.
const (
	// chaosExitOK: the run found no safety violation and checked everything.
	chaosExitOK = 0
	// chaosExitViolation: the checker found at least one violation (safety, read
	// completeness or availability).
	chaosExitViolation = 1
	// chaosExitInconclusive: bad flags, or the run could not check everything.
	chaosExitInconclusive = 2
)

// cmdChaos is `shardlog chaos`: it parses args, runs the harness until it ends or ctx
// ends (Ctrl-C: the run stops, heals, checks what it has and reports) and prints the
// report to stdout (text, or JSON with --json); progress goes to stderr.
func cmdChaos(ctx context.Context, e *env, _ globals, args []string) error {
	return exitCode(chaosMain(ctx, args, e.stdout, e.stderr))
}

// chaosMain is cmdChaos with its exit status.
func chaosMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, jsonOut, ok := chaosFlags(args, stderr)
	if !ok {
		return chaosExitInconclusive
	}
	fmt.Fprintf(stderr, "chaos: seed %d (replay with --seed %d)\n", cfg.Seed, cfg.Seed)
	rep, err := chaos.Run(ctx, cfg)
	if errors.Is(err, chaos.ErrUsage) {
		fmt.Fprintln(stderr, err)
		return chaosExitInconclusive
	}
	if jsonOut {
		printReportJSON(stdout, rep)
	} else {
		chaos.WriteText(stdout, rep)
	}
	switch {
	case !rep.Safe():
		fmt.Fprintf(stderr, "chaos: FAIL: %d violations (seed %d)\n", rep.Violations(), cfg.Seed)
		return chaosExitViolation
	case err != nil:
		fmt.Fprintf(stderr, "chaos: INCONCLUSIVE: %v (seed %d)\n", err, cfg.Seed)
		return chaosExitInconclusive
	}
	fmt.Fprintf(stderr, "chaos: PASS (seed %d)\n", cfg.Seed)
	return chaosExitOK
}

// chaosFlagValues are the flags that chaosFlags turns into Config fields after parsing.
type chaosFlagValues struct {
	faults           *string
	seed             *uint64
	jsonOut, verbose *bool
}

// defineChaosFlags binds `shardlog chaos`'s flags to cfg and returns the others.
func defineChaosFlags(fs *flag.FlagSet, cfg *chaos.Config) chaosFlagValues {
	fs.StringVar(&cfg.Binary, "binary", "", "shardlog binary for the servers (default: this executable if it is shardlog, else bin/shardlog)")
	fs.IntVar(&cfg.Nodes, "nodes", 5, "server processes")
	fs.IntVar(&cfg.Shards, "shards", 8, "shards of the test topic")
	fs.IntVar(&cfg.ReplicationFactor, "replication-factor", 3, "replicas per shard")
	v := chaosFlagValues{faults: fs.String("faults", strings.Join(chaos.DefaultFaults, ","),
		"faults to inject: any of "+strings.Join(chaos.AllFaults, ",")+" ("+chaos.FaultKillForever+" and "+chaos.FaultDrain+
			" take a node away for good, at most once a run, when enough nodes remain)")}
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long the workload and the faults run")
	v.seed = fs.Uint64("seed", 0, "seed of every random choice (0: a random seed, printed)")
	fs.IntVar(&cfg.Producers, "producers", 4, "producer clients")
	fs.IntVar(&cfg.Consumers, "consumers", 2, "consumer clients tailing every shard of "+chaos.Topic+" (and, when above 0, one more per other topic)")
	fs.IntVar(&cfg.Rate, "rate", 1000, "records per second over all producers")
	fs.IntVar(&cfg.IdleShards, "idle-shards", 8, "shards of the idle topic "+chaos.IdleTopic+", each written once per --idle-interval and probed after every fault (0: no idle topic)")
	fs.DurationVar(&cfg.IdleInterval, "idle-interval", 20*time.Second, "time between two records to one idle shard (the shards take turns)")
	fs.IntVar(&cfg.RetentionShards, "retention-shards", 2, "shards of the topic "+chaos.RetentionTopic+" with time retention (0: no such topic)")
	fs.DurationVar(&cfg.Retention, "retention", 4*time.Second, "retention of "+chaos.RetentionTopic+": older records may expire below the log start")
	fs.IntVar(&cfg.RetentionRate, "retention-rate", 40, "records per second to "+chaos.RetentionTopic)
	fs.DurationVar(&cfg.RetentionInterval, "retention-interval", time.Second, "the servers' --retention-interval (how often leaders apply retention)")
	fs.DurationVar(&cfg.MaxUnavailable, "max-unavailable", 10*time.Second,
		"fail the run when a shard that had a live, connected majority of its replicas stayed unwritable longer")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", 10*time.Second,
		"servers' --dead-after in runs with "+chaos.FaultKillForever+" or "+chaos.FaultDrain+" (how long a node is DEAD before its replicas move)")
	fs.DurationVar(&cfg.ReplicationTimeout, "replication-timeout", 60*time.Second,
		"in runs with "+chaos.FaultKillForever+" or "+chaos.FaultDrain+": fail unless every shard is at its replication factor on live nodes, with no move in progress and a leader, this long after the faults end")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 60*time.Second, "fail the run when the drain takes longer (until the node holds no replica and no move from it is in progress)")
	fs.DurationVar(&cfg.SettleTimeout, "settle-timeout", 60*time.Second, "bound on the heal-and-read phase's waits")
	fs.StringVar(&cfg.Dir, "dir", "", "where the run's temporary directory goes (default the system temp dir)")
	fs.BoolVar(&cfg.KeepDir, "keep", false, "keep the run's directory (data, server logs)")
	fs.StringVar(&cfg.ServerLogLevel, "server-log-level", "info", "servers' --log-level")
	fs.StringVar(&cfg.HistoryFile, "history", "", "also write the recorded history as JSON to this file")
	v.jsonOut = fs.Bool("json", false, "print the report as JSON")
	v.verbose = fs.Bool("v", false, "debug logging of the harness")
	return v
}

// chaosFlags turns args into a Config; it reports problems on stderr and ok=false.
func chaosFlags(args []string, stderr io.Writer) (cfg chaos.Config, jsonOut, ok bool) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	v := defineChaosFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, false, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected arguments %q\n", fs.Args())
		return cfg, false, false
	}
	var err error
	if cfg.Faults, err = chaos.ParseFaults(*v.faults); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, false, false
	}
	if slices.Contains(cfg.Faults, chaos.FaultPartition) {
		if err := chaos.NetnsAvailable(); err != nil {
			fmt.Fprintf(stderr, "chaos: partition faults skipped: %v\n", err)
			cfg.Faults = slices.DeleteFunc(cfg.Faults, func(f string) bool { return f == chaos.FaultPartition })
		}
	}
	if !checkChaosValues(cfg, stderr) {
		return cfg, false, false
	}
	// In Config 0 means the default; on the command line it means none.
	if cfg.IdleShards == 0 {
		cfg.IdleShards = -1
	}
	if cfg.RetentionShards == 0 {
		cfg.RetentionShards = -1
	}
	if cfg.Binary == "" {
		cfg.Binary = defaultServerBinary()
	}
	cfg.Seed = *v.seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	cfg.Logger = harnessLogger(stderr, *v.verbose)
	return cfg, *v.jsonOut, true
}

// checkChaosValues reports on stderr (and returns false) the flag values that are out
// of range before Config's defaults would hide them.
func checkChaosValues(cfg chaos.Config, stderr io.Writer) bool {
	// Config takes 0 as "the default"; on the command line a zero bound or interval is
	// an error, not a silent default.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"max-unavailable", cfg.MaxUnavailable}, {"idle-interval", cfg.IdleInterval}, {"retention", cfg.Retention},
		{"retention-interval", cfg.RetentionInterval}, {"dead-after", cfg.DeadAfter},
		{"replication-timeout", cfg.ReplicationTimeout}, {"drain-timeout", cfg.DrainTimeout}} {
		if d.v <= 0 {
			fmt.Fprintf(stderr, "chaos: --%s %s must be positive\n", d.name, d.v)
			return false
		}
	}
	if cfg.RetentionRate <= 0 || cfg.IdleShards < 0 || cfg.RetentionShards < 0 {
		fmt.Fprintf(stderr, "chaos: --retention-rate %d must be positive, --idle-shards and --retention-shards not negative\n",
			cfg.RetentionRate)
		return false
	}
	return true
}

// defaultServerBinary is the default of bench's and chaos's --binary: this executable
// when it is shardlog, else bin/shardlog.
func defaultServerBinary() string {
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "shardlog" {
		return exe
	}
	return filepath.Join("bin", "shardlog")
}

// harnessLogger is the text logger on stderr of the bench and chaos harnesses: info,
// or debug with -v.
func harnessLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// printReportJSON prints a harness report as indented JSON.
func printReportJSON(w io.Writer, rep any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}
