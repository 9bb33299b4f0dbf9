package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"time"

	"shardlog/node"
)

// serverFlags binds every node.Config field that an operator may set; each flag's
// default is cfg's value, which runServer takes from node.DefaultConfig.
func serverFlags(fs *flag.FlagSet, cfg *node.Config) (join, logLevel, pprofAddr *string) {
	fs.StringVar(&cfg.Dir, "dir", "", "data directory (required); holds the node ID, Raft log and segments")
	fs.StringVar(&cfg.Host, "host", cfg.Host, "address to bind")
	fs.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "address other nodes and clients dial (default --host)")
	fs.IntVar(&cfg.Port, "port", cfg.Port, "client gRPC port")
	fs.IntVar(&cfg.RaftPort, "raft-port", 0, "Raft transport port (default --port+1)")
	fs.IntVar(&cfg.GossipPort, "gossip-port", 0, "gossip TCP+UDP port (default --port+2)")
	join = fs.String("join", "", "client address(es) host:port[,host:port] of existing members; only used on first start")
	fs.StringVar(&cfg.Zone, "zone", "", "failure domain (rack or availability zone) for placement")
	fs.IntVar(&cfg.MetaVoters, "meta-voters", cfg.MetaVoters, "number of voting replicas of the meta group")
	fs.IntVar(&cfg.MaxBatchBytes, "max-batch-bytes", cfg.MaxBatchBytes, "largest produced batch, bytes")
	fs.IntVar(&cfg.MaxRecordBytes, "max-record-bytes", cfg.MaxRecordBytes, "largest record (key+value+headers), bytes")
	fs.IntVar(&cfg.MaxFetchBytes, "max-fetch-bytes", cfg.MaxFetchBytes, "largest fetch answer, bytes")
	fs.DurationVar(&cfg.MaxFetchWait, "max-fetch-wait", cfg.MaxFetchWait, "longest fetch long poll")
	fs.IntVar(&cfg.MaxShardsPerTopic, "max-shards-per-topic", cfg.MaxShardsPerTopic, "most shards a topic may have")
	fs.IntVar(&cfg.MaxTopics, "max-topics", cfg.MaxTopics, "most topics the cluster may hold")
	fs.IntVar(&cfg.MaxReplicationFactor, "max-replication-factor", cfg.MaxReplicationFactor, "highest replication factor (1..7)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "deadline for requests that arrive without one")
	fs.DurationVar(&cfg.ProposalTimeout, "proposal-timeout", cfg.ProposalTimeout, "one Raft proposal attempt; requests retry until their deadline")
	fs.DurationVar(&cfg.SequenceWait, "sequence-wait", cfg.SequenceWait, "how long a producer's batch that overtook its predecessor waits for it before being proposed")
	fs.Uint64Var(&cfg.RTTMillisecond, "rtt-ms", cfg.RTTMillisecond, "Raft tick in milliseconds")
	fs.Uint64Var(&cfg.ElectionRTT, "election-ticks", cfg.ElectionRTT, "Raft election timeout in ticks")
	fs.Uint64Var(&cfg.HeartbeatRTT, "heartbeat-ticks", cfg.HeartbeatRTT, "Raft heartbeat interval in ticks")
	fs.Uint64Var(&cfg.SnapshotEntries, "snapshot-entries", cfg.SnapshotEntries, "applied entries between Raft snapshots (lets the Raft log be compacted)")
	fs.StringVar(&cfg.LogDB, "logdb", cfg.LogDB, "Raft log store: pebble, or tan (faster for few shards, but preallocates 64 MB of disk per replica; fixed at first start)")
	fs.StringVar(&cfg.LogDBMemory, "logdb-memory", cfg.LogDBMemory, "Raft log memtables: tiny (4 MB), small (16 MB) or medium (64 MB); up to 4 per exec shard")
	fs.Uint64Var(&cfg.ExecShards, "exec-shards", cfg.ExecShards, "Raft step workers; fewer group more shards into one fsync (1, 2, 4, 8 or 16; fixed at first start)")
	fs.DurationVar(&cfg.RetentionInterval, "retention-interval", cfg.RetentionInterval, "how often shard leaders apply retention")
	fs.BoolVar(&cfg.Quiesce, "quiesce", cfg.Quiesce, "let idle shards stop heartbeating (dragonboat quiesce); the first request wakes a shard")
	fs.DurationVar(&cfg.DownProbeTimeout, "down-probe-timeout", cfg.DownProbeTimeout, "how long a direct call to a node gossip reports failed may take before the node counts as down (its shards elect new leaders, routing skips it)")
	fs.DurationVar(&cfg.WakeInterval, "wake-interval", cfg.WakeInterval, "how often to wake quiesced replicas whose leader's node is not ALIVE so they elect a new leader (gossip failures also trigger it); negative disables")
	fs.Func("min-free-disk", "free space the data directory's file system must keep (e.g. 512MiB, 2GiB, 10GB); below it produces to the shards this node holds are refused with ResourceExhausted until space is freed; 0 disables (default "+byteSize(cfg.MinFreeDiskBytes).String()+")", func(s string) error {
		b, err := parseByteSize(s)
		if err != nil {
			return err // the flag package names the flag
		}
		cfg.MinFreeDiskBytes = int64(b)
		if b == 0 {
			cfg.MinFreeDiskBytes = -1 // node.Config: negative disables, 0 means the default
		}
		return nil
	})
	fs.DurationVar(&cfg.LeaderBalanceInterval, "leader-balance-interval", cfg.LeaderBalanceInterval, "how often leaders hand shards to their preferred leader; negative disables")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", cfg.DeadAfter, "how long gossip must report a node DEAD before its replicas are re-created on other nodes and its meta vote given to another node")
	fs.IntVar(&cfg.MaxConcurrentMoves, "max-concurrent-moves", cfg.MaxConcurrentMoves, "most replica moves (re-replication, drain, balance) in progress at once")
	fs.DurationVar(&cfg.HealInterval, "heal-interval", cfg.HealInterval, "how often the meta leader plans replica moves and meta voter changes; negative disables self-healing")
	fs.BoolVar(&cfg.Balance, "balance", cfg.Balance, "move replicas and preferred leaders so every node holds and leads about as many as the others")
	pprofAddr = fs.String("pprof-addr", "", "serve Go's pprof endpoints (/debug/pprof/) on this host:port; empty disables")
	logLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Func("raft-log-level", "log level of dragonboat's own lines (Raft elections, transport): debug, info, warn, error (default "+
		strings.ToLower(cfg.DragonboatLogLevel.Level().String())+")", func(s string) error {
		l, err := parseLevel(s)
		cfg.DragonboatLogLevel = l
		return err
	})
	return join, logLevel, pprofAddr
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q must be debug, info, warn or error", s)
	}
	return l, nil
}

// runServer runs a node until ctx ends (SIGINT or SIGTERM), then closes it.
func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	cfg := node.DefaultConfig()
	join, logLevel, pprofAddr := serverFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("server takes no arguments, got %q", fs.Args())
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *join != "" {
		for _, j := range strings.Split(*join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				cfg.Join = append(cfg.Join, j)
			}
		}
	}
	if *pprofAddr != "" {
		lis, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
		cfg.Logger.Info("pprof endpoints", "addr", lis.Addr().String())
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	n.Close()
	return nil
}

// byteSize prints a byte count in binary units: 512B, 63.9MiB, 1GiB.
type byteSize uint64

func (b byteSize) String() string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", uint64(b))
	}
	div, exp := uint64(unit), 0
	for n := uint64(b) / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/float64(div)), ".0") + string("KMGTPE"[exp]) + "iB"
}

// parseByteSize reads a size: a whole number of bytes, or a number with a unit,
// binary (KiB, MiB, GiB, TiB) or decimal (kB or KB, MB, GB, TB), e.g. 512MiB, 1.5GiB, 10GB.
func parseByteSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("size %q is not a number with an optional unit such as 512MiB", s)
	}
	mult, ok := map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)", s, unit)
	}
	if v*mult >= 1<<63 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return uint64(v * mult), nil
}
