package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"shardlog/batch"
	"shardlog/localcluster"
	"shardlog/proto/shardlogv1"
)

// probeResult is the outcome of probing one shard with one record.
type probeResult struct {
	shard int
	// acked is when an attempt's Produce call returned success; zero when none did by
	// the deadline.
	acked time.Time
	// attempts counts the Produce calls sent; lastErr is the last failed one's error.
	attempts int
	lastErr  error
}

// probeSender sends attempt n (0-based) of shard's probe record with ctx's deadline.
type probeSender func(ctx context.Context, shard, attempt int) error

// probeShard sends one record to shard again and again until an attempt succeeds,
// deadline passes or ctx ends. Attempt n starts at start+n*interval or when attempt
// n-1 ended, whichever is later, and may last at most timeout (and not past
// deadline). The attempts are the same record, so the server applies it once.
func probeShard(ctx context.Context, send probeSender, shard int, start, deadline time.Time, interval, timeout time.Duration) probeResult {
	res := probeResult{shard: shard}
	for n := 0; ; n++ {
		sleepUntil(ctx, start.Add(time.Duration(n)*interval))
		now := time.Now()
		if ctx.Err() != nil || !now.Before(deadline) {
			return res
		}
		actx, cancel := context.WithDeadline(ctx, minTime(now.Add(timeout), deadline))
		err := send(actx, shard, n)
		cancel()
		res.attempts++
		if err == nil {
			res.acked = time.Now()
			return res
		}
		res.lastErr = err
	}
}

// probeShards probes every shard in shards at once (see probeShard) and returns the
// results in the order of shards.
func probeShards(ctx context.Context, send probeSender, shards []int, start, deadline time.Time, interval, timeout time.Duration) []probeResult {
	out := make([]probeResult, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() { out[i] = probeShard(ctx, send, s, start, deadline, interval, timeout) })
	}
	wg.Wait()
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// prober writes probe records with bare Produce calls. NB: not through client.Producer:
// its retries back off exponentially to 1 s, and its leader cache sends the first
// attempts to the dead leader; a probe must retry every ProbeInterval, through the
// nodes it was given only.
type prober struct {
	conns []*grpc.ClientConn
	topic string
	batch []byte
	ids   map[int]uint64 // per shard: the probe's producer ID
}

// leaderShard is a shard whose leader the leader poll waits for: its index, its shard
// ID and the node of each of its replicas.
type leaderShard struct {
	index  int
	id     uint64
	nodeOf map[uint64]uint64 // replica ID -> node ID
}

// pollLeaders asks every node of conns for the status of shards (ShardStatus, each
// node's own view, so that a stopped node cannot hold up the answer) every
// leaderPollInterval until each shard has a leader other than dead, and returns the
// time from killAt to the round that showed it. It fails at deadline, naming the
// shards still without one.
func pollLeaders(ctx context.Context, conns []*grpc.ClientConn, shards []leaderShard, dead uint64, killAt, deadline time.Time) (time.Duration, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req := &shardlogv1.ShardStatusRequest{}
	for _, s := range shards {
		req.ShardIds = append(req.ShardIds, s.id)
	}
	for {
		var resps []*shardlogv1.ShardStatusResponse
		for _, cc := range conns {
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			resp, err := shardlogv1.NewClusterClient(cc).ShardStatus(cctx, req)
			ccancel()
			if err == nil {
				resps = append(resps, resp)
			}
		}
		at := time.Now()
		waiting := withoutNewLeader(resps, shards, dead)
		if len(waiting) == 0 {
			return at.Sub(killAt), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("shards %v had no new leader within %v of the kill", waiting, deadline.Sub(killAt).Round(time.Millisecond))
		case <-time.After(leaderPollInterval):
		}
	}
}

// withoutNewLeader returns the indexes of the shards for which no response names a
// leader replica on a node other than dead.
func withoutNewLeader(resps []*shardlogv1.ShardStatusResponse, shards []leaderShard, dead uint64) []int {
	led := map[uint64]bool{}
	for _, resp := range resps {
		for _, st := range resp.GetShards() {
			if !st.GetHosted() || st.GetLeaderReplicaId() == 0 {
				continue
			}
			for _, s := range shards {
				if s.id == st.GetShardId() {
					if n := s.nodeOf[st.GetLeaderReplicaId()]; n != 0 && n != dead {
						led[s.id] = true
					}
				}
			}
		}
	}
	var waiting []int
	for _, s := range shards {
		if !led[s.id] {
			waiting = append(waiting, s.index)
		}
	}
	return waiting
}

// newProber connects to addrs and prepares one record of size bytes, with a producer
// ID of its own per shard in shards and sequence 0, so that every attempt for a shard
// is the same (producer, sequence) and applied once.
func newProber(addrs []string, topic string, shards []int, size int, seed uint64) (*prober, error) {
	p := &prober{topic: topic, ids: map[int]uint64{}}
	pl, err := NewPayload(size, 0, seed)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p.batch, err = batch.Encode(nil, []batch.Record{{Value: pl.Next(now), Timestamp: now.UnixMilli()}}, batch.CodecNone)
	if err != nil {
		return nil, fmt.Errorf("bench: probe batch: %w", err)
	}
	for _, s := range shards {
		p.ids[s] = randomProducerID()
	}
	for _, a := range addrs {
		cc, err := grpc.NewClient(a, shardlogv1.DialOptions()...)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("bench: probe connection to %s: %w", a, err)
		}
		p.conns = append(p.conns, cc)
	}
	return p, nil
}

// send is a probeSender: attempt n of shard goes to node (shard+n) mod len(conns).
func (p *prober) send(ctx context.Context, shard, attempt int) error {
	cc := p.conns[(shard+attempt)%len(p.conns)]
	_, err := shardlogv1.NewLogClient(cc).Produce(ctx, &shardlogv1.ProduceRequest{
		Topic: p.topic, Shard: uint32(shard), ProducerId: p.ids[shard], Sequence: 0, Batch: p.batch,
	})
	return err
}

func (p *prober) close() {
	for _, cc := range p.conns {
		_ = cc.Close()
	}
}

// randomProducerID returns a random non-zero producer ID (0 turns deduplication off).
func randomProducerID() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// waitStopped polls /proc/<pid>/stat until the process is stopped (state T), and
// fails after timeout.
func waitStopped(ctx context.Context, pid int, timeout time.Duration) error {
	var last string
	ok := waitUntilEvery(ctx, timeout, time.Millisecond, func() bool {
		st, err := localcluster.ReadState(pid)
		if err != nil {
			last = err.Error()
			return false
		}
		last = "state " + string(st)
		return st == 'T'
	})
	if !ok {
		return fmt.Errorf("bench: pid %d not stopped %v after SIGSTOP (%s)", pid, timeout, last)
	}
	return nil
}
