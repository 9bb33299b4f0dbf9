package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"shardlog/batch"
	"shardlog/chaos"
	"shardlog/client"
	"shardlog/node"
	"shardlog/node/nodetest"
	pb "shardlog/proto/shardlogv1"
)

const topic = "crash"

// spec is one crash run's shape.
type spec struct {
	nodes, shards   int
	producers       int
	rate            float64 // records per second per producer
	minRun, maxRun  time.Duration
	cycles          int           // power cuts; 0 means until budget
	budget          time.Duration // with cycles 0: cut power until this much time has passed
	skipWALInCycle0 bool          // the fault: LogDB WAL syncs lie during the first workload
	// snapshotEntries, when set, makes Raft snapshot (and sync the segment store, then
	// compact the log) that often, so cuts also land around snapshots.
	snapshotEntries uint64
	earlyCuts       bool // some cuts 100-500 ms after the restart
}

// cycle is one step of the seeded schedule: run the workload for run, cut the power of
// every node at once, restart the nodes in order.
type cycle struct {
	run   time.Duration
	order []int
}

// nextCycle draws the next cycle. With s.earlyCuts one cycle in four cuts the power
// soon after the restart, while replicas may still be replaying their Raft logs.
func nextCycle(rng *rand.Rand, s spec) cycle {
	run := s.minRun + time.Duration(rng.Int64N(int64(s.maxRun-s.minRun)+1))
	if s.earlyCuts && rng.IntN(4) == 0 {
		run = time.Duration(100+rng.IntN(400)) * time.Millisecond
	}
	return cycle{run: run, order: rng.Perm(s.nodes)}
}

// harness runs nodes over Disks on one Power and records what producers were told.
type harness struct {
	t     *testing.T
	spec  spec
	seed  uint64
	power *Power
	disks []*Disk
	c     *nodetest.Cluster

	mu           sync.Mutex
	acks         []chaos.Ack
	indet        []chaos.Failed
	nextProducer int
	producers    sync.WaitGroup

	cuts                    int
	finalAcks               int // acknowledged in the last, uncut epoch
	raftDropped, segDropped int64
}

func (h *harness) fsOption(i int, cfg *node.Config) {
	cfg.RaftFS = h.disks[i].RaftFS()
	cfg.SegmentFS = h.disks[i].SegmentFS()
	if h.spec.snapshotEntries > 0 {
		cfg.SnapshotEntries = h.spec.snapshotEntries
		cfg.CompactionOverhead = h.spec.snapshotEntries / 4
	}
}

func startHarness(t *testing.T, seed uint64, s spec) *harness {
	h := &harness{t: t, spec: s, seed: seed, power: &Power{}}
	for range s.nodes {
		h.disks = append(h.disks, NewDisk(h.power))
	}
	h.c = nodetest.Start(t, s.nodes, h.fsOption)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := h.c.Client(0).CreateTopic(ctx, &pb.TopicSpec{Name: topic, Shards: uint32(s.shards), ReplicationFactor: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if _, why := h.waitSettled(ctx); why != "" {
		t.Fatalf("cluster did not settle after creating the topic: %s", why)
	}
	return h
}

// addrs are the client addresses of every node (stable across restarts).
func (h *harness) addrs() []string {
	var out []string
	for i := range h.disks {
		out = append(out, h.c.Addr(i))
	}
	return out
}

// startProducers starts s.producers producers in the current epoch and returns the
// func that stops their sending. A stopped producer flushes in the background (its
// acknowledgements are indeterminate by then); waitProducers waits for all of them.
func (h *harness) startProducers(s spec) (stop func()) {
	done := make(chan struct{})
	epoch := h.power.Epoch()
	for range s.producers {
		h.mu.Lock()
		id := h.nextProducer
		h.nextProducer++
		h.mu.Unlock()
		h.producers.Add(1)
		go func() {
			defer h.producers.Done()
			if err := h.produce(id, epoch, s.rate, done); err != nil {
				h.t.Errorf("producer %d: %v", id, err)
			}
		}()
	}
	return func() { close(done) }
}

func (h *harness) produce(id int, epoch uint64, rate float64, done <-chan struct{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-done; cancel() }()
	cl, err := client.Dial(context.Background(), h.addrs(), client.Options{DialTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	var pr *client.Producer
	for pr == nil {
		pr, err = cl.NewProducer(ctx, topic, client.ProducerOptions{
			Linger: 2 * time.Millisecond, DeliveryTimeout: 10 * time.Second, RequestTimeout: 3 * time.Second,
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil // cut before the producer existed: nothing sent
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	shards := pr.Shards()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return pr.Close()
		case <-tick.C:
		}
		v := Value(h.seed, id, seq)
		err := pr.Send(ctx, client.Message{Value: []byte(v), Shard: client.ToShard(uint32(seq % uint64(shards)))}, func(res client.Result) {
			h.record(id, seq, epoch, res)
		})
		if err != nil {
			if ctx.Err() != nil {
				return pr.Close()
			}
			return err
		}
	}
}

// record files one producer callback. An acknowledgement counts only while the power is
// on in the producer's epoch (see the package comment); any later one, and any error,
// leaves the record indeterminate.
func (h *harness) record(id int, seq, epoch uint64, res client.Result) {
	cv := chaos.Value(id, seq)
	live := h.power.Live(epoch)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case res.Err != nil:
		h.indet = append(h.indet, chaos.Failed{Producer: id, Seq: seq, Value: cv, Err: res.Err.Error()})
	case !live:
		h.indet = append(h.indet, chaos.Failed{Producer: id, Seq: seq, Value: cv, Err: "acknowledged after the power cut"})
	default:
		h.acks = append(h.acks, chaos.Ack{Producer: id, Seq: seq, Shard: res.Shard, Offset: res.Offset, Value: cv})
	}
}

func (h *harness) ackCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.acks)
}

// crash cuts the power of every node at one instant, stops the nodes, drops what was
// not synced, restores the power and restarts the nodes in order.
// stopProducers (from startProducers) is called right after the cut.
func (h *harness) crash(order []int, stopProducers func()) {
	h.t.Helper()
	h.power.Cut()
	stopProducers()
	h.cuts++
	h.c.Close()
	for i, d := range h.disks {
		r, s, err := d.Crash()
		if err != nil {
			h.t.Fatalf("crash disk %d: %v", i, err)
		}
		h.raftDropped += r
		h.segDropped += s
	}
	h.power.Restore()
	for _, i := range order {
		h.c.Restart(i, h.fsOption)
	}
	h.c.WaitAlive(len(h.disks), 60*time.Second)
}

// waitProducers waits (bounded by the delivery timeout) for every producer to finish.
func (h *harness) waitProducers() {
	h.t.Helper()
	done := make(chan struct{})
	go func() { h.producers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		h.t.Fatalf("producers did not finish within 60 s")
	}
}

// waitSettled waits until every shard has a leader and all its replicas are hosted and
// hold the leader's next offset, or ctx ends. It returns the shards as last described
// and why they are not settled ("" when they are).
func (h *harness) waitSettled(ctx context.Context) ([]*pb.ShardInfo, string) {
	h.t.Helper()
	cl := h.c.Client(0)
	var shards []*pb.ShardInfo
	why := "not described"
	for ctx.Err() == nil {
		info, err := cl.DescribeTopic(ctx, topic, true)
		if err == nil {
			shards = info.GetShards()
			if why = unsettled(ctx, shards); why == "" {
				return shards, ""
			}
		} else {
			why = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return shards, why
}

// unsettled is chaos.Unsettled, which also requires every shard to name its leader.
func unsettled(ctx context.Context, shards []*pb.ShardInfo) string {
	for _, s := range shards {
		if s.GetStatusError() != "" || s.GetLeaderNodeId() == 0 {
			return fmt.Sprintf("shard %d: no leader %s", s.GetIndex(), s.GetStatusError())
		}
	}
	return chaos.Unsettled(ctx, shards)
}

// readReplicas reads every replica of every shard from its own node.
func (h *harness) readReplicas(ctx context.Context, shards []*pb.ShardInfo) []Replica {
	h.t.Helper()
	names := map[string]string{}
	for i := range h.disks {
		names[h.c.Addr(i)] = fmt.Sprintf("n%d", i)
	}
	var out []Replica
	for _, s := range shards {
		for _, rep := range s.GetReplicas() {
			recs, err := readReplica(ctx, rep.GetClientAddr(), s.GetIndex())
			if err != nil {
				h.t.Fatalf("read shard %d on %s: %v", s.GetIndex(), rep.GetClientAddr(), err)
			}
			out = append(out, Replica{Shard: s.GetIndex(), Node: names[rep.GetClientAddr()], Records: recs})
		}
	}
	return out
}

// readReplica fetches one node's own replica of a shard from offset 0 to its end. It
// keeps every record at the offset its batch puts it, so gaps stay visible.
func readReplica(ctx context.Context, addr string, shard uint32) ([]Stored, error) {
	cc, err := grpc.NewClient(addr, pb.DialOptions()...)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	lc := pb.NewLogClient(cc)
	var out []Stored
	for from := uint64(0); ; {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := lc.Fetch(fctx, &pb.FetchRequest{Topic: topic, Shard: shard, Offset: from, MaxBytes: 4 << 20, Local: true})
		cancel()
		if err != nil {
			return nil, err
		}
		next := from
		for _, b := range resp.GetBatches() {
			recs, err := batch.Decode(b.GetData())
			if err != nil {
				return nil, fmt.Errorf("batch at %d: %w", b.GetBaseOffset(), err)
			}
			for i, r := range recs {
				if off := b.GetBaseOffset() + uint64(i); off >= next {
					out = append(out, Stored{Offset: off, Value: string(r.Value)})
					next = off + 1
				}
			}
		}
		if next == from {
			return out, nil
		}
		from = next
	}
}

// history returns what the run recorded together with the replicas' contents.
func (h *harness) history(shards uint32, reps []Replica) History {
	h.mu.Lock()
	defer h.mu.Unlock()
	return History{Seed: h.seed, Shards: shards, Acks: append([]chaos.Ack(nil), h.acks...),
		Indeterminate: append([]chaos.Failed(nil), h.indet...), Replicas: reps}
}
