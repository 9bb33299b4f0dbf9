package node

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/gossip"
	"shardlog/ids"
)

// diskCheckInterval is how often a node reads the free space of its data
// directory's file system and refreshes which peers gossiped a full disk. A peer's
// state reaches a leader within two intervals plus a gossip broadcast: at 200 MB/s
// that is about 100 MB, inside the default 1 GiB of --min-free-disk. statfs and a
// copy of the gossip table cost microseconds.
const diskCheckInterval = 250 * time.Millisecond

// diskFullReason tags, in the status details, a produce refused because a disk is
// below its limit, so a forwarding node does not retry it within the request: it
// cannot succeed until someone frees space (the client retries with its backoff).
const diskFullReason = "DISK_FULL"

// diskSpace is what statfs says about a file system.
type diskSpace struct {
	free, total uint64 // bytes available to the process, and the size
}

// statfs reads the file system that holds dir.
func statfs(dir string) (diskSpace, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return diskSpace{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return diskSpace{free: st.Bavail * uint64(st.Bsize), total: st.Blocks * uint64(st.Bsize)}, nil
}

// diskState is one reading of the monitor.
type diskState struct {
	full        bool
	free, total uint64 // the last successful reading; zero before the first
}

// diskMonitor tracks whether the node's data directory has less free space than
// --min-free-disk. NB: ENOSPC must never reach dragonboat or Pebble: a failed Raft
// log write panics the process (dragonboat's step worker calls panicNow on a
// SaveRaftState error, and its Pebble logger's Fatalf panics when a WAL commit
// fails), and so does a failed apply into the segment store. The monitor turns the
// shortage into a refusal of new writes long before that.
//
// check runs on one goroutine (Node.checkDisk, and once in Start before it);
// state and peers are read by any goroutine.
type diskMonitor struct {
	dir     string
	minFree uint64 // 0: the check is off
	statfs  func(dir string) (diskSpace, error)
	log     *slog.Logger

	st    atomic.Pointer[diskState]
	peers atomic.Pointer[map[ids.NodeID]gossip.NodeMeta] // other nodes that reported a full disk

	mu        sync.Mutex // serializes check
	failing   bool       // the last statfs failed (logged once per failure streak); guarded by mu
	published bool       // the full flag last put into gossip; set by gossipMeta (in Start, then only on checkDisk)
}

func newDiskMonitor(dir string, minFree int64, fs func(string) (diskSpace, error), log *slog.Logger) *diskMonitor {
	m := &diskMonitor{dir: dir, statfs: fs, log: log}
	if minFree > 0 {
		m.minFree = uint64(minFree)
	}
	m.st.Store(&diskState{})
	return m
}

func (m *diskMonitor) state() diskState { return *m.st.Load() }

// resumeAt is the free space at which a full disk counts as free again: 1/16 above
// the limit, so a disk hovering at the limit does not flip (and log) every second.
func (m *diskMonitor) resumeAt() uint64 { return m.minFree + m.minFree/16 }

// check reads the free space once and reports whether the full flag changed. It
// logs each transition once; a statfs error keeps the last state.
func (m *diskMonitor) check() bool {
	if m.minFree == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sp, err := m.statfs(m.dir)
	if err != nil {
		if !m.failing {
			m.failing = true
			m.log.Error("cannot read free disk space; keeping the last disk state", "dir", m.dir, "disk_full", m.state().full, "err", err)
		}
		return false
	}
	if m.failing {
		m.failing = false
		m.log.Info("free disk space readable again", "dir", m.dir)
	}
	was := m.state().full
	full := was
	switch {
	case !was && sp.free < m.minFree:
		full = true
		m.log.Warn("disk full: free space below --min-free-disk; refusing produces to the shards this node holds, reads still work",
			"dir", m.dir, "free", formatBytes(sp.free), "min_free_disk", formatBytes(m.minFree), "size", formatBytes(sp.total))
	case was && sp.free >= m.resumeAt():
		full = false
		m.log.Info("disk space back above --min-free-disk; accepting produces again",
			"dir", m.dir, "free", formatBytes(sp.free), "min_free_disk", formatBytes(m.minFree))
	}
	m.st.Store(&diskState{full: full, free: sp.free, total: sp.total})
	return full != was
}

// setPeers records which other members say their disk is full. Members that are
// DEAD or LEFT receive no Raft entries, so they do not count.
func (m *diskMonitor) setPeers(members []gossip.Member, self ids.NodeID) {
	full := map[ids.NodeID]gossip.NodeMeta{}
	for _, mb := range members {
		if mb.NodeID != self && mb.Meta.DiskFull && (mb.State == gossip.StateAlive || mb.State == gossip.StateSuspect) {
			full[mb.NodeID] = mb.Meta
		}
	}
	m.peers.Store(&full)
}

// gossipMeta is the metadata this node gossips: addresses, zone and disk state.
func (n *Node) gossipMeta() gossip.NodeMeta {
	gm := gossip.NodeMeta{ClientAddr: n.cfg.ClientAddr(), Zone: n.cfg.Zone}
	if st := n.disk.state(); st.full {
		gm.DiskFull, gm.DiskFreeBytes, gm.MinFreeDiskBytes = true, st.free, n.disk.minFree
	}
	n.disk.published = gm.DiskFull
	return gm
}

// checkDisk runs every diskCheckInterval: read the free space, gossip a change of
// the full flag, and refresh which peers reported a full disk.
func (n *Node) checkDisk(time.Time) {
	n.disk.check()
	if n.gossip == nil {
		return
	}
	if n.disk.state().full != n.disk.published {
		// The new metadata is in effect locally even when the broadcast times out;
		// push/pull spreads it later.
		if err := n.gossip.UpdateMeta(n.gossipMeta()); err != nil {
			n.log.Warn("gossip the disk state", "disk_full", n.disk.published, "err", err)
		}
	}
	n.disk.setPeers(n.gossip.Members(), n.id.NodeID)
}

// diskRefusal is the error a produce to shardID gets on its leader while the
// leader's own disk, or the disk of any node holding a replica of the shard, is
// below its limit; nil otherwise.
//
// NB: any replica, not only the ones a quorum needs: the leader sends every entry
// to every follower it reaches, so a full follower would keep appending to its Raft
// log until ENOSPC panics it.
func (n *Node) diskRefusal(shardID ids.ShardID) error {
	if st := n.disk.state(); st.full {
		return diskFullError("node %d: free disk space on %s is %s, below --min-free-disk %s: produce to shard %d refused until space is freed; reads still work",
			n.id.NodeID, n.cfg.Dir, formatBytes(st.free), formatBytes(n.disk.minFree), shardID)
	}
	peers := n.disk.peers.Load()
	v := n.view.Load()
	if peers == nil || len(*peers) == 0 || v == nil {
		return nil
	}
	_, sh, ok := v.ShardByID(shardID)
	if !ok {
		return nil
	}
	for _, r := range sh.Replicas {
		if gm, full := (*peers)[r.NodeID]; full {
			return diskFullError("node %d, which holds a replica of shard %d, reported free disk space of %s, below its --min-free-disk %s: produce refused until it frees space; reads still work",
				r.NodeID, shardID, formatBytes(gm.DiskFreeBytes), formatBytes(gm.MinFreeDiskBytes))
		}
	}
	return nil
}

// diskInfo reports a node's disk state for DescribeCluster: this node's current
// reading, another's as it gossiped it (free space only while full).
func (n *Node) diskInfo(id ids.NodeID) (full bool, free, minFree uint64) {
	if id == n.id.NodeID {
		st := n.disk.state()
		return st.full, st.free, n.disk.minFree
	}
	if n.gossip == nil {
		return false, 0, 0
	}
	if mb, ok := n.gossip.Member(id); ok && mb.Meta.DiskFull {
		return true, mb.Meta.DiskFreeBytes, mb.Meta.MinFreeDiskBytes
	}
	return false, 0, 0
}

// diskFullError is a ResourceExhausted status tagged diskFullReason.
func diskFullError(format string, args ...any) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(format, args...))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: diskFullReason, Domain: "shardlog"}); err == nil {
		st = d
	}
	return st.Err()
}

// isDiskFull reports whether err is a refusal made by diskFullError, here or on
// the node a request was forwarded to.
func isDiskFull(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Reason == diskFullReason {
			return true
		}
	}
	return false
}

// formatBytes prints a byte count in binary units: 512 B, 63.9 MiB, 1.0 GiB.
func formatBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
