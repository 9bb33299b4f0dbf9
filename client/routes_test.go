package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"shardlog/batch"
	"shardlog/client/clienttest"
	"shardlog/proto/shardlogv1"
)

// twoNodes starts a "follower" fake (node 1, the only address the client dials) and a
// "leader" fake (node 2); both hold topic t with 2 shards, and both report node 2 as the
// leader of shard 0 while node 1 leads shard 1.
func twoNodes(t *testing.T) (follower, leader *clienttest.Server, c *Client) {
	t.Helper()
	follower, leader = clienttest.NewServer(1), clienttest.NewServer(2)
	leader.SetNodeID(2)
	// The real shard state machine accepts any sequence from a producer it has not
	// seen, which is what the follower sees once the leader is gone.
	follower.SetFaults(clienttest.Faults{AcceptUnknownProducer: true})
	var addrs [2]string
	for i, s := range []*clienttest.Server{follower, leader} {
		a, err := s.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		addrs[i] = a
		req := &shardlogv1.CreateTopicRequest{Spec: &shardlogv1.TopicSpec{Name: "t", Shards: 2, ReplicationFactor: 2}}
		if _, err := s.CreateTopic(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*clienttest.Server{follower, leader} {
		if err := s.SetLeader("t", 0, 2, addrs[1]); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLeader("t", 1, 1, addrs[0]); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Dial(t.Context(), []string{addrs[0]}, Options{DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return follower, leader, c
}

func countRecords(t *testing.T, s *clienttest.Server, shard uint32) int {
	t.Helper()
	offs, _, err := s.Records("t", shard)
	if err != nil {
		t.Fatal(err)
	}
	return len(offs)
}

func TestLeaderRoutingProduceGoesToLeaderAndFallsBack(t *testing.T) {
	follower, leader, c := twoNodes(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p, err := c.NewProducer(ctx, "t", ProducerOptions{RequestTimeout: time.Second, DeliveryTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 5 {
		for shard := range 2 {
			if _, err := p.SendSync(ctx, Message{Value: fmt.Appendf(nil, "v%d", i), Shard: ToShard(uint32(shard))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if l, f := countRecords(t, leader, 0), countRecords(t, follower, 0); l != 5 || f != 0 {
		t.Fatalf("shard 0: leader holds %d, follower %d; want 5 and 0", l, f)
	}
	if l, f := countRecords(t, leader, 1), countRecords(t, follower, 1); l != 0 || f != 5 {
		t.Fatalf("shard 1: leader holds %d, follower %d; want 0 and 5", l, f)
	}

	leader.Stop()
	for i := range 3 {
		if _, err := p.SendSync(ctx, Message{Value: fmt.Appendf(nil, "after%d", i), Shard: ToShard(0)}); err != nil {
			t.Fatalf("send after the leader stopped: %v", err)
		}
	}
	if f := countRecords(t, follower, 0); f != 3 {
		t.Fatalf("follower shard 0 holds %d records after the leader stopped, want 3", f)
	}
}

func TestLeaderRoutingFetchGoesToLeaderAndFallsBack(t *testing.T) {
	follower, leader, c := twoNodes(t)
	recs := func(prefix string, n int) []batch.Record {
		var out []batch.Record
		for i := range n {
			out = append(out, batch.Record{Value: fmt.Appendf(nil, "%s%d", prefix, i), Timestamp: int64(i)})
		}
		return out
	}
	for _, s := range []*clienttest.Server{follower, leader} {
		if _, err := s.Append("t", 0, recs("a", 10)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	k, err := c.NewConsumer(ctx, "t", ConsumerOptions{Shards: []uint32{0}, Start: StartEarliest, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	got := pollUntil(t, k, 10)
	checkShardRun(t, got, 0, "a", 0)
	if lf, ff := leader.Stats().Fetches, follower.Stats().Fetches; lf == 0 || ff != 0 {
		t.Fatalf("fetches: leader %d, follower %d; want them all on the leader", lf, ff)
	}

	leader.Stop()
	if _, err := follower.Append("t", 0, recs("b", 5)); err != nil {
		t.Fatal(err)
	}
	got = pollUntil(t, k, 5)
	for i, r := range got {
		if r.Offset != uint64(10+i) || string(r.Value) != fmt.Sprintf("b%d", i) {
			t.Fatalf("record %d after fallback: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if follower.Stats().Fetches == 0 {
		t.Fatal("no fetch reached the follower after the leader stopped")
	}
}

func TestLeaderRoutingLearnsFromHeader(t *testing.T) {
	_, c := startFake(t, 1, "", 0, "")
	r := c.routesFor("x")
	info := &shardlogv1.TopicInfo{Shards: []*shardlogv1.ShardInfo{{
		Index: 0, LeaderNodeId: 1,
		Replicas: []*shardlogv1.ReplicaInfo{
			{NodeId: 1, ClientAddr: "127.0.0.1:1", Leader: true},
			{NodeId: 2, ClientAddr: "127.0.0.1:2"},
		},
	}}}
	if missing := r.update(info); missing {
		t.Fatal("update reports a missing leader")
	}
	tests := []struct {
		name   string
		header string
		want   uint64
	}{
		{"same node keeps the cache", "1", 1},
		{"another known node replaces it", "2", 2},
		{"an unknown node leaves it", "9", 2},
		{"a malformed header leaves it", "x", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.observe(0, callTarget{cc: c.conns[0], idx: 0}, metadata.Pairs(shardlogv1.LeaderHeader, tc.header), nil)
			r.mu.Lock()
			got := r.leaders[0].node
			r.mu.Unlock()
			if got != tc.want {
				t.Fatalf("leader %d, want %d", got, tc.want)
			}
		})
	}
}

// A cached leader that stops answering (SIGSTOP: its connections stay open) costs one
// LeaderAttemptTimeout, not RequestTimeout: the retry goes through the dialled node.
func TestClientHungLeaderCostsOneAttemptTimeout(t *testing.T) {
	follower, leader, c := twoNodes(t)
	leader.SetFaults(clienttest.Faults{Hang: true})
	ctx := t.Context()
	p, err := c.NewProducer(ctx, "t", ProducerOptions{Linger: -1, RequestTimeout: 20 * time.Second, LeaderAttemptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	if _, err := p.SendSync(ctx, Message{Shard: ToShard(0), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("produce past a hung leader took %v; RequestTimeout is 20 s, the leader attempt bound 300 ms", took)
	}
	if n := countRecords(t, follower, 0); n != 1 {
		t.Fatalf("follower holds %d records of shard 0, want 1", n)
	}
	cons, err := c.NewConsumer(ctx, "t", ConsumerOptions{Shards: []uint32{0}, Start: StartEarliest, MaxWait: 100 * time.Millisecond,
		RequestTimeout: 20 * time.Second, LeaderAttemptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	start = time.Now()
	for got := 0; got == 0; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(recs)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("fetch past a hung leader: nothing after %v", took)
		}
	}
}
