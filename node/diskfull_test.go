package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/client"
	"shardlog/ids"
	"shardlog/node"
	"shardlog/node/nodetest"
	pb "shardlog/proto/shardlogv1"
)

// The limit covers what lands on the disk at once: each of the node's four Pebble
// DBs that take writes here (three LogDB shards, the segment store) preallocates a
// 4.5 MiB WAL when its 4 MiB memtable rotates, then flushes the memtable, while
// produces go on until the refusal takes effect. A limit of 24 MiB was seen to run
// the tmpfs out of space (dragonboat panicked on ENOSPC in its WAL).
const (
	diskTmpfsBytes = 192 << 20
	diskMinFree    = 64 << 20
	// diskHeadroom is the free space above the limit the filler leaves: what the
	// produce loop must write before the node calls its disk full.
	diskHeadroom = 8 << 20
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it in
// Cleanup (after the cluster registered later has stopped). It skips the test when
// it cannot mount (not root, or no CAP_SYS_ADMIN in a container).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full test needs root to mount a small tmpfs; skipped")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("disk-full test cannot mount a tmpfs on %s (%v); skipped", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// syncBuffer is a log sink the test reads while the node writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// diskProducer sends idempotent batches of random records to each shard and
// remembers every acknowledged record by shard and offset.
type diskProducer struct {
	t     *testing.T
	logc  pb.LogClient
	topic string
	seq   map[uint32]uint64
	acked map[uint32]map[uint64][]byte
}

// send sends the next batch of shard. It returns the error of a refused batch,
// which keeps its sequence for the next try; other failures are retried.
func (p *diskProducer) send(ctx context.Context, shard uint32) error {
	vals := make([][]byte, 16)
	recs := make([]batch.Record, len(vals))
	for i := range vals {
		vals[i] = make([]byte, 4<<10)
		_, _ = rand.Read(vals[i]) // incompressible: the disk fills as fast as we send
		recs[i] = batch.Record{Value: vals[i], Timestamp: time.Now().UnixMilli()}
	}
	batch, err := batch.Encode(nil, recs, batch.CodecNone)
	if err != nil {
		p.t.Fatal(err)
	}
	for try := 0; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := p.logc.Produce(cctx, &pb.ProduceRequest{Topic: p.topic, Shard: shard, ProducerId: 77, Sequence: p.seq[shard], Batch: batch})
		cancel()
		if status.Code(err) == codes.ResourceExhausted {
			return err
		}
		if err != nil {
			if try > 20 || ctx.Err() != nil {
				p.t.Fatalf("produce to shard %d: %v", shard, err)
			}
			continue // outcome unknown or no leader: the same sequence is deduplicated
		}
		p.seq[shard]++
		for i, v := range vals {
			p.acked[shard][resp.BaseOffset+uint64(i)] = v
		}
		return nil
	}
}

// verify reads every shard through logc (from the leader, or from the node's own
// replica when local) and checks that every acknowledged record is there, intact.
// A local replica may not have applied the last entries yet, so it is read again
// for up to 10 s.
func (p *diskProducer) verify(ctx context.Context, logc pb.LogClient, local bool, what string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.check(ctx, logc, local)
		if err == nil {
			return
		}
		if !local || time.Now().After(deadline) {
			p.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *diskProducer) check(ctx context.Context, logc pb.LogClient, local bool) error {
	for shard, want := range p.acked {
		got := map[uint64][]byte{}
		for off := uint64(0); ; {
			f, err := logc.Fetch(ctx, &pb.FetchRequest{Topic: p.topic, Shard: shard, Offset: off, MaxBytes: 4 << 20, Local: local})
			if err != nil {
				return fmt.Errorf("fetch shard %d at %d: %w", shard, off, err)
			}
			for _, b := range f.Batches {
				recs, err := batch.Decode(b.Data)
				if err != nil {
					return fmt.Errorf("shard %d batch at %d: %w", shard, b.BaseOffset, err)
				}
				for i, r := range recs {
					got[b.BaseOffset+uint64(i)] = r.Value
				}
				off = b.BaseOffset + uint64(len(recs))
			}
			if len(f.Batches) == 0 || off >= f.NextOffset {
				break
			}
		}
		for off, v := range want {
			if !bytes.Equal(got[off], v) {
				return fmt.Errorf("shard %d offset %d: acknowledged record missing or changed (%d bytes read of %d)", shard, off, len(got[off]), len(v))
			}
		}
	}
	return nil
}

// A node whose data directory fills up makes the cluster refuse produces to every
// shard it holds (its own leaders by its own check, the others' via gossip) with
// ResourceExhausted naming the node, says so once in its log and in
// DescribeCluster; reads keep working; when space is freed, writes resume by
// themselves, and nothing acknowledged is lost or changed.
func TestClusterDiskFullRefusesWritesAndRecovers(t *testing.T) {
	mnt := mountTmpfs(t, diskTmpfsBytes)
	logs := &syncBuffer{}
	c := nodetest.Start(t, 3, func(i int, cfg *node.Config) {
		// Each node soon leads its preferred shard, so node 2 leads one of the three
		// (its own check refuses) and the others lead the rest (they refuse from gossip).
		cfg.LeaderBalanceInterval = 200 * time.Millisecond
		if i == 2 {
			cfg.Dir = filepath.Join(mnt, "n2")
			cfg.MinFreeDiskBytes = diskMinFree
			cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	})
	ctx := ctxT(t, 90*time.Second)
	const shards = 3
	if _, err := c.Client(0).CreateTopic(ctx, &pb.TopicSpec{Name: "full", Shards: shards, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	full := c.Node(2).ID()
	waitLeadersSpread(t, c.Client(0), "full", shards)
	p := &diskProducer{t: t, logc: pb.NewLogClient(rawConn(t, c.Addr(0))), topic: "full", seq: map[uint32]uint64{}, acked: map[uint32]map[uint64][]byte{}}
	for s := range uint32(shards) {
		p.acked[s] = map[uint64][]byte{}
		if err := p.send(ctx, s); err != nil {
			t.Fatalf("first produce to shard %d: %v", s, err)
		}
	}

	// Fill the tmpfs to diskHeadroom above the limit, then produce until every
	// shard refuses.
	free := freeBytes(t, mnt)
	t.Logf("tmpfs of %d MiB: %d MiB free with the cluster running", diskTmpfsBytes>>20, free>>20)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, free-diskMinFree-diskHeadroom), 0o644); err != nil {
		t.Fatalf("write filler: %v", err)
	}
	refused := map[uint32]error{}
	deadline := time.Now().Add(30 * time.Second)
	for sent := 0; len(refused) < shards; sent++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d batches, %d MiB free: only shards %v refused writes", sent, freeBytes(t, mnt)>>20, refused)
		}
		s := uint32(sent % shards)
		if _, done := refused[s]; done {
			continue
		}
		if err := p.send(ctx, s); err != nil {
			refused[s] = err
		}
	}
	own, peer := 0, 0
	for s, err := range refused {
		msg := status.Convert(err).Message()
		switch {
		case strings.HasPrefix(msg, fmt.Sprintf("node %d: free disk space on %s is ", full, filepath.Join(mnt, "n2"))):
			own++ // node 2 leads the shard
		case strings.HasPrefix(msg, fmt.Sprintf("node %d, which holds a replica of shard ", full)) && strings.Contains(msg, "reported free disk space of "):
			peer++ // another node leads it and learned node 2's state from gossip
		default:
			t.Errorf("shard %d refused with %q: want node %d, its free space and the limit", s, msg, full)
		}
		if !strings.Contains(msg, "below") || !strings.Contains(msg, "--min-free-disk 64.0 MiB") {
			t.Errorf("shard %d refused with %q: want the limit", s, msg)
		}
	}
	if own == 0 || peer == 0 {
		t.Errorf("refusals: %d by the full leader, %d by leaders that heard it from gossip; want both kinds: %v", own, peer, refused)
	}
	t.Logf("refused with %d MiB free; e.g. %v", freeBytes(t, mnt)>>20, refused[0])
	if free := freeBytes(t, mnt); free == 0 {
		t.Fatal("the tmpfs ran out of space: the refusal came too late")
	}

	// Reads keep working, from the leaders and from the full node's own replicas.
	p.verify(ctx, p.logc, false, "while full")
	p.verify(ctx, pb.NewLogClient(rawConn(t, c.Addr(2))), true, "node 2's replicas while full")
	waitDiskReported(t, c.Client(1), full, true)

	// Free the space: writes resume by themselves, on every shard.
	t.Logf("%d MiB free before the filler is deleted", freeBytes(t, mnt)>>20)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for s := range uint32(shards) {
		for {
			err := p.send(ctx, s)
			if err == nil {
				break
			}
			if time.Since(freed) > 10*time.Second {
				t.Fatalf("shard %d still refuses writes 10 s after space was freed: %v", s, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("writes resumed on all %d shards %v after the filler was deleted", shards, time.Since(freed).Round(time.Millisecond))
	for s := range uint32(shards) {
		for range 5 {
			if err := p.send(ctx, s); err != nil {
				t.Fatalf("shard %d after recovery: %v", s, err)
			}
		}
	}
	waitDiskReported(t, c.Client(1), full, false)
	p.verify(ctx, p.logc, false, "after recovery")
	p.verify(ctx, pb.NewLogClient(rawConn(t, c.Addr(2))), true, "node 2's replicas after recovery")

	out := logs.String()
	if n := strings.Count(out, "disk full: free space below --min-free-disk"); n != 1 {
		t.Errorf("node 2 logged the disk-full transition %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "disk space back above --min-free-disk"); n != 1 {
		t.Errorf("node 2 logged the recovery %d times, want once", n)
	}
}

// waitDiskReported waits up to 5 s until DescribeCluster through cl shows node
// full with disk_full as want (and, while full, its free space below the limit),
// and every other node not full.
func waitDiskReported(t *testing.T, cl *client.Client, full ids.NodeID, want bool) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := cl.DescribeCluster(ctx5(t))
		if err != nil {
			last = err.Error()
			continue
		}
		last = ""
		for _, ni := range resp.Nodes {
			w := want && ids.NodeID(ni.NodeId) == full
			switch {
			case ni.DiskFull != w:
				last += fmt.Sprintf("node %d disk_full %v; ", ni.NodeId, ni.DiskFull)
			case w && (ni.DiskFreeBytes >= diskMinFree || ni.MinFreeDiskBytes != diskMinFree):
				last += fmt.Sprintf("node %d: %d bytes free, limit %d; ", ni.NodeId, ni.DiskFreeBytes, ni.MinFreeDiskBytes)
			}
		}
		if last == "" {
			return
		}
	}
	t.Fatalf("DescribeCluster does not show node %d disk_full=%v: %s", full, want, last)
}

func ctx5(t *testing.T) context.Context { return ctxT(t, 5*time.Second) }

// waitLeadersSpread waits up to 20 s until the topic's shards have leaders on
// distinct nodes (each node leads its preferred shard).
func waitLeadersSpread(t *testing.T, cl *client.Client, topic string, shards int) {
	t.Helper()
	var leaders map[uint64]bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		info, err := cl.DescribeTopic(ctx5(t), topic, false)
		if err != nil {
			continue
		}
		leaders = map[uint64]bool{}
		for _, sh := range info.Shards {
			if sh.LeaderNodeId != 0 {
				leaders[sh.LeaderNodeId] = true
			}
		}
		if len(leaders) == shards {
			return
		}
	}
	t.Fatalf("leaders of %s not spread over %d nodes: %v", topic, shards, leaders)
}
