package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Exit statuses of Main.
const (
	// ExitOK: the run found no safety violation and checked everything.
	ExitOK = 0
	// ExitViolation: the checker found at least one violation (safety, read completeness or
	// availability).
	ExitViolation = 1
	// ExitInconclusive: bad flags, or the run could not check everything.
	ExitInconclusive = 2
)

// Main is `shardlog chaos`: it parses args, runs the harness and prints the report to
// stdout (text, or JSON with --json); progress goes to stderr. It returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, jsonOut, ok := parseFlags(args, stderr)
	if !ok {
		return ExitInconclusive
	}
	fmt.Fprintf(stderr, "chaos: seed %d (replay with --seed %d)\n", cfg.Seed, cfg.Seed)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if errors.Is(err, ErrUsage) {
		fmt.Fprintln(stderr, err)
		return ExitInconclusive
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		WriteText(stdout, rep)
	}
	switch {
	case !rep.Safe():
		fmt.Fprintf(stderr, "chaos: FAIL: %d violations (seed %d)\n", rep.Violations(), cfg.Seed)
		return ExitViolation
	case err != nil:
		fmt.Fprintf(stderr, "chaos: INCONCLUSIVE: %v (seed %d)\n", err, cfg.Seed)
		return ExitInconclusive
	}
	fmt.Fprintf(stderr, "chaos: PASS (seed %d)\n", cfg.Seed)
	return ExitOK
}

// parseFlags turns args into a Config; it reports problems on stderr and ok=false.
func parseFlags(args []string, stderr io.Writer) (cfg Config, jsonOut, ok bool) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Binary, "binary", "", "shardlog binary for the servers (default: this executable if it is shardlog, else bin/shardlog)")
	fs.IntVar(&cfg.Nodes, "nodes", 5, "server processes")
	fs.IntVar(&cfg.Shards, "shards", 8, "shards of the test topic")
	fs.IntVar(&cfg.ReplicationFactor, "replication-factor", 3, "replicas per shard")
	faults := fs.String("faults", strings.Join(AllFaults, ","), "faults to inject: any of "+strings.Join(AllFaults, ","))
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long the workload and the faults run")
	seed := fs.Uint64("seed", 0, "seed of every random choice (0: a random seed, printed)")
	fs.IntVar(&cfg.Producers, "producers", 4, "producer clients")
	fs.IntVar(&cfg.Consumers, "consumers", 2, "consumer clients tailing every shard of "+Topic+" (and, when above 0, one more per other topic)")
	fs.IntVar(&cfg.Rate, "rate", 1000, "records per second over all producers")
	fs.IntVar(&cfg.IdleShards, "idle-shards", 8, "shards of the idle topic "+IdleTopic+", each written once per --idle-interval and probed after every fault (0: no idle topic)")
	fs.DurationVar(&cfg.IdleInterval, "idle-interval", 20*time.Second, "time between two records to one idle shard (the shards take turns)")
	fs.IntVar(&cfg.RetentionShards, "retention-shards", 2, "shards of the topic "+RetentionTopic+" with time retention (0: no such topic)")
	fs.DurationVar(&cfg.Retention, "retention", 4*time.Second, "retention of "+RetentionTopic+": older records may expire below the log start")
	fs.IntVar(&cfg.RetentionRate, "retention-rate", 40, "records per second to "+RetentionTopic)
	fs.DurationVar(&cfg.RetentionInterval, "retention-interval", time.Second, "the servers' --retention-interval (how often leaders apply retention)")
	fs.DurationVar(&cfg.MaxUnavailable, "max-unavailable", 10*time.Second,
		"fail the run when a shard that had a live, connected majority of its replicas stayed unwritable longer")
	fs.DurationVar(&cfg.SettleTimeout, "settle-timeout", 60*time.Second, "bound on the heal-and-read phase's waits")
	fs.StringVar(&cfg.Dir, "dir", "", "where the run's temporary directory goes (default the system temp dir)")
	fs.BoolVar(&cfg.KeepDir, "keep", false, "keep the run's directory (data, server logs)")
	fs.StringVar(&cfg.ServerLogLevel, "server-log-level", "info", "servers' --log-level")
	fs.StringVar(&cfg.HistoryFile, "history", "", "also write the recorded history as JSON to this file")
	jsonFlag := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "debug logging of the harness")
	if err := fs.Parse(args); err != nil {
		return cfg, false, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected arguments %q\n", fs.Args())
		return cfg, false, false
	}
	var err error
	if cfg.Faults, err = ParseFaults(*faults); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, false, false
	}
	if slices.Contains(cfg.Faults, FaultPartition) {
		if err := NetnsAvailable(); err != nil {
			fmt.Fprintf(stderr, "chaos: partition faults skipped: %v\n", err)
			cfg.Faults = slices.DeleteFunc(cfg.Faults, func(f string) bool { return f == FaultPartition })
		}
	}
	if !checkValues(cfg, stderr) {
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
		cfg.Binary = defaultBinary()
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, *jsonFlag, true
}

// checkValues reports on stderr (and returns false) the flag values that are out of
// range before Config's defaults would hide them.
func checkValues(cfg Config, stderr io.Writer) bool {
	// Config takes 0 as "the default"; on the command line a zero bound or interval is
	// an error, not a silent default.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"max-unavailable", cfg.MaxUnavailable}, {"idle-interval", cfg.IdleInterval}, {"retention", cfg.Retention},
		{"retention-interval", cfg.RetentionInterval}} {
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

// defaultBinary is this executable when it is shardlog, else bin/shardlog.
func defaultBinary() string {
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "shardlog" {
		return exe
	}
	return filepath.Join("bin", "shardlog")
}

// WriteText prints r for people.
func WriteText(w io.Writer, r Report) {
	fmt.Fprintf(w, "seed                %d\n", r.Seed)
	fmt.Fprintf(w, "acknowledged        %d\n", r.Acknowledged)
	fmt.Fprintf(w, "indeterminate       %d (%d of them in the log)\n", r.Indeterminate, r.IndeterminateFound)
	fmt.Fprintf(w, "reads               %d\n", r.Reads)
	fmt.Fprintf(w, "final records       %d\n", r.FinalRecords)
	var fs []string
	for _, k := range sortedKeys(r.Faults) {
		fs = append(fs, fmt.Sprintf("%s=%d", k, r.Faults[k]))
	}
	fmt.Fprintf(w, "faults              %s\n", strings.Join(fs, " "))
	fmt.Fprintf(w, "max unavailable     %d ms, worst shard of all topics (bound %d ms; not counted: time without a live majority)\n",
		r.MaxUnavailableMs, r.UnavailableBoundMs)
	for _, t := range r.Topics {
		fmt.Fprintf(w, "  topic %-15s %d acknowledged, %d final records, %d expired, worst shard %d unavailable %d ms\n",
			t.Name, t.Acknowledged, t.FinalRecords, t.Expired, t.WorstShard, t.MaxShardUnavailableMs)
		fmt.Fprintf(w, "    per shard (ms)  %v\n", t.ShardUnavailableMs)
	}
	fmt.Fprintf(w, "expired             %d (acknowledged, below the log start and older than the retention; not lost)\n", r.Expired)
	fmt.Fprintf(w, "lagging replicas    %d\n", r.LaggingReplicas)
	fmt.Fprintf(w, "order indeterminate %d (a failed send landed after later ones; not a violation)\n", r.OrderIndeterminate)
	for _, ex := range r.Examples["order_indeterminate"] {
		fmt.Fprintf(w, "    e.g. %s\n", ex)
	}
	for _, v := range []struct {
		name string
		n    int
	}{
		{"lost", r.Lost}, {"duplicated", r.Duplicated}, {"divergent", r.Divergent}, {"altered", r.Altered},
		{"phantom_reads", r.PhantomReads}, {"read_gaps", r.ReadGaps}, {"order_violations", r.OrderViolations},
		{"unknown_records", r.UnknownRecords}, {"unavailable_shards", r.UnavailableShards},
	} {
		fmt.Fprintf(w, "%-19s %d\n", strings.ReplaceAll(v.name, "_", " "), v.n)
		for _, ex := range r.Examples[v.name] {
			fmt.Fprintf(w, "    e.g. %s\n", ex)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "harness error: %s\n", e)
	}
	verdict := "PASS"
	switch {
	case !r.Safe():
		verdict = "FAIL"
	case len(r.Errors) > 0:
		verdict = "INCONCLUSIVE"
	}
	fmt.Fprintf(w, "verdict             %s\n", verdict)
}
