package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"github.com/lni/dragonboat/v4/config"
)

// DefaultDeploymentID keeps shardlog NodeHosts from talking to other dragonboat
// applications on the same network ("SHRDLOG1").
const DefaultDeploymentID uint64 = 0x5348_5244_4c4f_4731

// Config is everything one node needs. Only cmd fills it from flags; tests fill it
// through nodetest. Fields marked "fixed" may never change once the directory exists.
type Config struct {
	// Dir holds the node's identity, Raft log and segment store. Required. Fixed.
	Dir string
	// Host is the address the node binds on. Default 127.0.0.1.
	Host string
	// AdvertiseHost is the address other nodes and clients dial. Default Host; required
	// when Host is a wildcard (0.0.0.0, ::). Fixed for the Raft port (dragonboat keeps it).
	AdvertiseHost string
	// Port is the client gRPC port (also used node to node). Default 7400.
	Port int
	// RaftPort is dragonboat's transport port. Default Port+1. Fixed.
	RaftPort int
	// GossipPort is memberlist's TCP+UDP port. Default Port+2.
	GossipPort int
	// Join lists client addresses (host:port) of existing members. Only read when the
	// directory is new; a restart finds its peers in its own copy of the meta group.
	Join []string
	// Zone is the failure domain (rack, availability zone) used by placement.
	Zone string
	// MetaVoters is how many nodes vote in the meta group; later joiners hold
	// non-voting replicas. Default 3.
	MetaVoters int
	// DeploymentID separates clusters (dragonboat refuses messages from other IDs). Fixed.
	DeploymentID uint64

	// MaxBatchBytes bounds one produced batch. Default 8 MiB.
	MaxBatchBytes int
	// MaxRecordBytes bounds one record's key+value+headers. Default 1 MiB.
	MaxRecordBytes int
	// MaxFetchBytes bounds one fetch answer. Default 16 MiB.
	MaxFetchBytes int
	// MaxFetchWait bounds a long poll. Default 30 s.
	MaxFetchWait time.Duration
	// MaxShardsPerTopic bounds CreateTopic. Default 4096.
	MaxShardsPerTopic int
	// MaxTopics bounds the number of topics in the cluster. Default 100000.
	MaxTopics int
	// MaxReplicationFactor bounds CreateTopic. Default 7.
	MaxReplicationFactor int

	// RequestTimeout is the deadline given to calls that arrive without one. Default 10 s.
	RequestTimeout time.Duration
	// ProposalTimeout bounds one Raft proposal attempt; a request retries attempts
	// until its own deadline. Short, because a proposal forwarded to a leader that just
	// died is lost silently. Default 2 s.
	ProposalTimeout time.Duration
	// SequenceWait is how long a producer's batch that arrived ahead of its
	// predecessor waits for it before being proposed anyway. Default 500 ms.
	SequenceWait time.Duration
	// RTTMillisecond is dragonboat's tick. Default 50: every tick steps every shard,
	// so with 1,000 shards a 10 ms tick cost 45-65% of a core per idle node.
	RTTMillisecond uint64
	// ElectionRTT is the election timeout in ticks. Default 10 (500-1000 ms).
	ElectionRTT uint64
	// HeartbeatRTT is the heartbeat interval in ticks. Default 2 (100 ms).
	HeartbeatRTT uint64
	// SnapshotEntries is how many applied entries trigger a Raft snapshot (which lets
	// the Raft log be compacted). Default 10000.
	SnapshotEntries uint64
	// CompactionOverhead is how many entries stay behind a snapshot so lagging
	// followers catch up from the log. Default 5000.
	CompactionOverhead uint64
	// LogDBMemory picks dragonboat's LogDB memory preset: tiny (4 MB memtables),
	// small (16 MB) or medium (64 MB, default). Each LogDB shard keeps up to 4
	// memtables and a node writes to ExecShards of its 16 shards, so medium holds at
	// most 1 GB of memtables with the default 4 exec shards. May change on restart.
	LogDBMemory string
	// LogDB is the Raft log store: "pebble" (default; one LSM shared by every
	// replica on the node) or "tan" (dragonboat's log-structured store: no LSM
	// compactions, but one log file per replica with 64 MB preallocated on disk).
	// Fixed at first start.
	LogDB string
	// ExecShards is dragonboat's step worker count; fewer group more shards into one
	// fsync. Default 4. Fixed.
	ExecShards uint64
	// RetentionInterval is how often a shard leader checks retention. Default 30 s.
	RetentionInterval time.Duration
	// LeaderBalanceInterval is how often a node hands leadership of the shards it
	// leads to their preferred (placement-chosen) leaders. Default 5 s; negative disables.
	LeaderBalanceInterval time.Duration
	// WakeInterval is how often a node looks for local replicas whose leader is on a
	// node gossip no longer holds ALIVE (or that have no leader) and wakes them from
	// quiesce so they elect a new one; gossip's SUSPECT and DEAD reports trigger the
	// same pass at once. Default 1 s; negative disables (idle shards then never fail
	// over while quiesced).
	WakeInterval time.Duration
	// DownProbeTimeout bounds the direct call to a node gossip reports failed; a node
	// counts as down (its led shards are woken, routing skips it) only when that call
	// fails too. Default 1 s.
	DownProbeTimeout time.Duration
	// Quiesce lets idle shards stop heartbeating (dragonboat's quiesce mode), so
	// thousands of idle shards cost little CPU. The first request to a quiesced shard
	// wakes it. The server turns it on (flag --quiesce, default true): with 1,000 idle
	// shards on 3 nodes it took idle CPU from 25% to 9% of a core per node.
	Quiesce bool
	// MinFreeDiskBytes is the free space the data directory's file system must
	// keep: below it the node refuses produces to the shards it leads, and leaders
	// elsewhere refuse produces to the shards it holds (it says so in gossip), so no
	// replica's Raft log or store write meets ENOSPC, on which dragonboat and Pebble
	// panic. The headroom absorbs what arrives before the refusal takes effect (the
	// disk is checked every second) plus Pebble's WAL preallocation, memtable
	// flushes and compactions. Default 1 GiB (medium LogDB: 64 MB memtables and
	// ~70 MB preallocated WALs per active LogDB shard); negative disables the check.
	MinFreeDiskBytes int64
	// DeadAfter is how long gossip must report a node DEAD (or LEFT) before its
	// replicas are moved to other nodes and its meta vote is given to another node.
	// A node back within it just catches up. Default 5 min.
	DeadAfter time.Duration
	// MaxConcurrentMoves bounds the replica moves in progress at once, so recovery
	// does not flood the survivors. Default 8.
	MaxConcurrentMoves int
	// HealInterval is how often the meta leader plans moves and meta voter
	// changes. Default 1 s; negative disables self-healing (and balance).
	HealInterval time.Duration
	// Balance lets the meta leader move replicas and preferred leaders so every
	// node holds and leads about as many as the others. The server turns it on
	// (flag --balance, default true); like Quiesce, EnsureDefaults cannot tell off
	// from unset.
	Balance bool
	// GossipFast uses short gossip timings (tests).
	GossipFast bool
	// Logger receives every log line, dragonboat's and memberlist's included.
	Logger *slog.Logger
	// DragonboatLogLevel filters dragonboat's own logs. nil means slog.LevelError.
	DragonboatLogLevel slog.Leveler

	// RaftFS, when set, holds dragonboat's NodeHost directory (Raft log, snapshots)
	// instead of the real disk; the path inside it is still Dir/raft. Tests only: the
	// crash tests use file systems that drop unsynced data. nil means the real disk.
	RaftFS config.IFS
	// SegmentFS, when set, holds the segment store (Dir/segments) instead of the real
	// disk. Tests only, like RaftFS. nil means the real disk. The identity file always
	// stays on the real disk in Dir.
	SegmentFS pebblevfs.FS
}

// DefaultConfig is the configuration of a `shardlog server` started without flags:
// the flags take their defaults from it and nodetest starts from it, so a test
// cluster runs as the server does. Dir is left for the caller; RaftPort, GossipPort
// and AdvertiseHost stay zero and EnsureDefaults derives them from Port and Host.
func DefaultConfig() Config {
	return Config{
		Host:                  "127.0.0.1",
		Port:                  7400,
		MetaVoters:            3,
		DeploymentID:          DefaultDeploymentID,
		MaxBatchBytes:         8 << 20,
		MaxRecordBytes:        1 << 20,
		MaxFetchBytes:         16 << 20,
		MaxFetchWait:          30 * time.Second,
		MaxShardsPerTopic:     4096,
		MaxTopics:             100000,
		MaxReplicationFactor:  7,
		RequestTimeout:        10 * time.Second,
		ProposalTimeout:       2 * time.Second,
		SequenceWait:          500 * time.Millisecond,
		RTTMillisecond:        50,
		ElectionRTT:           10,
		HeartbeatRTT:          2,
		SnapshotEntries:       10000,
		CompactionOverhead:    5000,
		LogDBMemory:           "medium",
		LogDB:                 "pebble",
		ExecShards:            4,
		RetentionInterval:     30 * time.Second,
		LeaderBalanceInterval: 5 * time.Second,
		WakeInterval:          time.Second,
		DownProbeTimeout:      time.Second,
		Quiesce:               true,
		MinFreeDiskBytes:      1 << 30,
		DeadAfter:             5 * time.Minute,
		MaxConcurrentMoves:    8,
		HealInterval:          time.Second,
		Balance:               true,
		DragonboatLogLevel:    slog.LevelError,
	}
}

// EnsureDefaults fills zero fields with DefaultConfig's values, and the derived ones
// (AdvertiseHost from Host, RaftPort and GossipPort from Port). Quiesce, a bool whose
// default is true, is the one field it cannot tell unset from off: start from
// DefaultConfig to get it.
func (c *Config) EnsureDefaults() {
	d := DefaultConfig()
	orDefault(&c.Host, d.Host)
	if c.AdvertiseHost == "" && !isWildcard(c.Host) {
		c.AdvertiseHost = c.Host
	}
	orDefault(&c.Port, d.Port)
	orDefault(&c.RaftPort, c.Port+1)
	orDefault(&c.GossipPort, c.Port+2)
	orDefault(&c.MetaVoters, d.MetaVoters)
	orDefault(&c.DeploymentID, d.DeploymentID)
	orDefault(&c.MaxBatchBytes, d.MaxBatchBytes)
	orDefault(&c.MaxRecordBytes, d.MaxRecordBytes)
	orDefault(&c.MaxFetchBytes, d.MaxFetchBytes)
	orDefault(&c.MaxFetchWait, d.MaxFetchWait)
	orDefault(&c.MaxShardsPerTopic, d.MaxShardsPerTopic)
	orDefault(&c.MaxTopics, d.MaxTopics)
	orDefault(&c.MaxReplicationFactor, d.MaxReplicationFactor)
	orDefault(&c.RequestTimeout, d.RequestTimeout)
	orDefault(&c.ProposalTimeout, d.ProposalTimeout)
	orDefault(&c.SequenceWait, d.SequenceWait)
	orDefault(&c.RTTMillisecond, d.RTTMillisecond)
	orDefault(&c.ElectionRTT, d.ElectionRTT)
	orDefault(&c.HeartbeatRTT, d.HeartbeatRTT)
	orDefault(&c.SnapshotEntries, d.SnapshotEntries)
	orDefault(&c.CompactionOverhead, d.CompactionOverhead)
	orDefault(&c.LogDBMemory, d.LogDBMemory)
	orDefault(&c.LogDB, d.LogDB)
	orDefault(&c.ExecShards, d.ExecShards)
	orDefault(&c.RetentionInterval, d.RetentionInterval)
	orDefault(&c.LeaderBalanceInterval, d.LeaderBalanceInterval)
	orDefault(&c.WakeInterval, d.WakeInterval)
	if c.DownProbeTimeout <= 0 {
		c.DownProbeTimeout = d.DownProbeTimeout
	}
	orDefault(&c.MinFreeDiskBytes, d.MinFreeDiskBytes)
	orDefault(&c.DeadAfter, d.DeadAfter)
	orDefault(&c.MaxConcurrentMoves, d.MaxConcurrentMoves)
	orDefault(&c.HealInterval, d.HealInterval)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DragonboatLogLevel == nil {
		c.DragonboatLogLevel = d.DragonboatLogLevel
	}
}

// orDefault sets *v to d when *v is its type's zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports every problem with the configuration at once. It does no I/O.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("--dir is required"))
	}
	if c.AdvertiseHost == "" {
		errs = append(errs, fmt.Errorf("--advertise-host is required when --host is %q", c.Host))
	} else if isWildcard(c.AdvertiseHost) {
		errs = append(errs, fmt.Errorf("--advertise-host %q is not an address others can dial", c.AdvertiseHost))
	}
	for name, p := range map[string]int{"--port": c.Port, "--raft-port": c.RaftPort, "--gossip-port": c.GossipPort} {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d is not a port (1-65535)", name, p))
		}
	}
	if c.Port == c.RaftPort || c.Port == c.GossipPort || c.RaftPort == c.GossipPort {
		errs = append(errs, fmt.Errorf("ports must differ: --port %d, --raft-port %d, --gossip-port %d", c.Port, c.RaftPort, c.GossipPort))
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("--join %q is not host:port", j))
		}
	}
	if c.MetaVoters < 1 || c.MetaVoters > 7 {
		errs = append(errs, fmt.Errorf("--meta-voters %d must be 1..7", c.MetaVoters))
	}
	if c.MaxRecordBytes > c.MaxBatchBytes {
		errs = append(errs, fmt.Errorf("--max-record-bytes %d exceeds --max-batch-bytes %d", c.MaxRecordBytes, c.MaxBatchBytes))
	}
	if c.ElectionRTT <= 2*c.HeartbeatRTT {
		errs = append(errs, fmt.Errorf("election RTT %d must exceed twice the heartbeat RTT %d", c.ElectionRTT, c.HeartbeatRTT))
	}
	if c.ExecShards < 1 || c.ExecShards > 16 || 16%c.ExecShards != 0 {
		// The LogDB presets have 16 shards; dragonboat wants them a multiple of ExecShards.
		errs = append(errs, fmt.Errorf("--exec-shards %d must be 1, 2, 4, 8 or 16", c.ExecShards))
	}
	switch c.LogDB {
	case "pebble", "tan":
	default:
		errs = append(errs, fmt.Errorf("--logdb %q must be pebble or tan", c.LogDB))
	}
	switch c.LogDBMemory {
	case "tiny", "small", "medium":
	default:
		errs = append(errs, fmt.Errorf("--logdb-memory %q must be tiny, small or medium", c.LogDBMemory))
	}
	if c.MaxShardsPerTopic < 1 {
		errs = append(errs, fmt.Errorf("--max-shards-per-topic %d must be at least 1", c.MaxShardsPerTopic))
	}
	if c.MaxTopics < 1 {
		errs = append(errs, fmt.Errorf("--max-topics %d must be at least 1", c.MaxTopics))
	}
	if c.DeadAfter < 0 {
		errs = append(errs, fmt.Errorf("--dead-after %v is negative", c.DeadAfter))
	}
	if c.MaxConcurrentMoves < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-moves %d must be at least 1", c.MaxConcurrentMoves))
	}
	if c.MaxReplicationFactor < 1 || c.MaxReplicationFactor > 7 {
		errs = append(errs, fmt.Errorf("--max-replication-factor %d must be 1..7", c.MaxReplicationFactor))
	}
	return errors.Join(errs...)
}

// ClientAddr is the advertised client gRPC address.
func (c *Config) ClientAddr() string { return hostPort(c.AdvertiseHost, c.Port) }

// RaftAddr is the advertised dragonboat address.
func (c *Config) RaftAddr() string { return hostPort(c.AdvertiseHost, c.RaftPort) }

// GossipAddr is the advertised memberlist address.
func (c *Config) GossipAddr() string { return hostPort(c.AdvertiseHost, c.GossipPort) }

func hostPort(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }

func isWildcard(h string) bool { return h == "0.0.0.0" || h == "::" || h == "" }
