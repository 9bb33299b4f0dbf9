package node_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/client"
	"shardlog/ids"
	"shardlog/node"
	"shardlog/node/nodetest"
	pb "shardlog/proto/shardlogv1"
)

// numOf returns the readable number of the node with ID id.
func numOf(t *testing.T, cl *client.Client, id ids.NodeID) uint32 {
	t.Helper()
	resp, err := cl.DescribeCluster(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range resp.Nodes {
		if nd.NodeId == uint64(id) {
			return nd.Num
		}
	}
	t.Fatalf("node %d not in the cluster", id)
	return 0
}

// replicasOn counts the replicas DescribeCluster places on node num, and the moves
// from it.
func replicasOn(ctx context.Context, cl *client.Client, num uint32) (replicas, moves int, err error) {
	resp, err := cl.DescribeCluster(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range resp.Topics {
		for _, sh := range t.Shards {
			for _, r := range sh.Replicas {
				if r.NodeNum == num {
					replicas++
				}
			}
		}
	}
	for _, m := range resp.Moves {
		if m.FromNode == num {
			moves++
		}
	}
	return replicas, moves, nil
}

// TestClusterDrainAndRemoveUnderLoad drains a live node while a producer writes,
// removes it, and checks that nothing acknowledged is lost, the node holds
// nothing, and its number is refused afterwards.
func TestClusterDrainAndRemoveUnderLoad(t *testing.T) {
	c := nodetest.Start(t, 4)
	ctx := ctxT(t, 2*time.Minute)
	cl := c.Client(0)
	if _, err := cl.CreateTopicAndWait(ctx, &pb.TopicSpec{Name: "drain", Shards: 6, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	if first := numOf(t, cl, c.Node(0).ID()); first != 1 {
		t.Fatalf("the bootstrap node has number %d, want 1", first)
	}
	num := numOf(t, cl, c.Node(3).ID())
	if n, _, _ := replicasOn(ctx, cl, num); n == 0 {
		t.Fatalf("node %d holds no replica before the drain: the test would prove nothing", num)
	}
	type out struct{ acked map[uint32]map[uint64]string }
	done := make(chan out, 1)
	go func() { done <- out{produceN(t, cl, "drain", 3000, "load")} }()

	if _, err := cl.DrainNode(ctx, num, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		n, moves, err := replicasOn(ctx, cl, num)
		if err == nil && n == 0 && moves == 0 {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("node %d still holds %d replicas (%d moves) 60 s into the drain (%v)", num, n, moves, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("drained in %.1f s", time.Since(start).Seconds())
	if _, err := cl.RemoveNode(ctx, num); err != nil {
		t.Fatal(err)
	}
	acked := (<-done).acked
	got := readAll(t, c.Client(1), "drain")
	total := 0
	for shard, offs := range acked {
		for off, val := range offs {
			total++
			if got[shard][off] != val {
				t.Fatalf("shard %d offset %d = %q, want %q", shard, off, got[shard][off], val)
			}
		}
	}
	if total != 3000 {
		t.Fatalf("%d records acknowledged, want 3000", total)
	}
	_, err := cl.DrainNode(ctx, num, false)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("drain of removed node %d: %v, want FailedPrecondition", num, err)
	}
	resp, err := cl.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Nodes) != 3 {
		t.Fatalf("%d nodes after the removal, want 3", len(resp.Nodes))
	}
}

// TestClusterDrainRefusals: a drain that could never finish and unknown numbers
// get clear errors; removing a node that holds replicas is refused.
func TestClusterDrainRefusals(t *testing.T) {
	c := nodetest.Start(t, 3)
	ctx := ctxT(t, time.Minute)
	cl := c.Client(0)
	if _, err := cl.CreateTopicAndWait(ctx, &pb.TopicSpec{Name: "rf3", Shards: 2, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"drain below the RF", func() error { _, err := cl.DrainNode(ctx, 2, false); return err }, codes.FailedPrecondition},
		{"drain node 0", func() error { _, err := cl.DrainNode(ctx, 0, false); return err }, codes.InvalidArgument},
		{"drain unknown", func() error { _, err := cl.DrainNode(ctx, 99, false); return err }, codes.NotFound},
		{"remove with replicas", func() error { _, err := cl.RemoveNode(ctx, 2); return err }, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code {
				t.Fatalf("err = %v, want %v", err, tt.code)
			}
			t.Logf("%v", err)
		})
	}
}

// TestClusterZoneLossKeepsShardsWritable: 3 zones x 2 nodes, RF 3. Placement puts
// each shard's replicas in three zones; stopping both nodes of one zone leaves
// every shard writable, and nothing moves before --dead-after.
func TestClusterZoneLossKeepsShardsWritable(t *testing.T) {
	zones := []string{"a", "b", "c", "a", "b", "c"} // the first three join as meta voters
	c := nodetest.Start(t, 6, func(i int, cfg *node.Config) { cfg.Zone = zones[i] })
	ctx := ctxT(t, 2*time.Minute)
	cl := c.Client(1)
	info, err := cl.CreateTopicAndWait(ctx, &pb.TopicSpec{Name: "zones", Shards: 6, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	zoneOf := map[uint64]string{}
	for i := range 6 {
		zoneOf[uint64(c.Node(i).ID())] = zones[i]
	}
	for _, sh := range info.Shards {
		seen := map[string]bool{}
		for _, r := range sh.Replicas {
			if seen[zoneOf[r.NodeId]] {
				t.Fatalf("shard %d has two replicas in zone %s", sh.Index, zoneOf[r.NodeId])
			}
			seen[zoneOf[r.NodeId]] = true
		}
	}
	c.Stop(0)
	c.Stop(3)
	p, err := cl.NewProducer(ctx, "zones", client.ProducerOptions{Linger: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan client.Result, len(info.Shards))
	for i := range info.Shards {
		msg := client.Message{Value: []byte(fmt.Sprintf("zone-a-down-%d", i)), Shard: client.ToShard(uint32(i))}
		if err := p.Send(ctx, msg, func(r client.Result) { results <- r }); err != nil {
			t.Fatal(err)
		}
	}
	for range info.Shards {
		if r := <-results; r.Err != nil {
			t.Fatalf("shard %d not writable with zone a down: %v", r.Shard, r.Err)
		}
	}
	if err := p.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestClusterNodeBackAfterItsReplicasMoved: a node that returns after its
// replicas were moved deletes them and their data, and holds nothing; a meta voter
// that was replaced rejoins the meta group with a new meta replica and its view
// follows the cluster again. (One that returns before --dead-after keeps its
// replicas and catches up: TestClusterLeaderLossRestartAndCatchUp.)
func TestClusterNodeBackAfterItsReplicasMoved(t *testing.T) {
	for _, tc := range []struct {
		name   string
		victim int
	}{{"non-voter", 3}, {"meta voter", 1}} {
		t.Run(tc.name, func(t *testing.T) { nodeBack(t, tc.victim) })
	}
}

func nodeBack(t *testing.T, victim int) {
	c := nodetest.Start(t, 4, func(i int, cfg *node.Config) {
		cfg.DeadAfter = 3 * time.Second
		cfg.Balance = false // the returning node would get replicas back
	})
	ctx := ctxT(t, 2*time.Minute)
	cl := c.Client(0)
	if _, err := cl.CreateTopicAndWait(ctx, &pb.TopicSpec{Name: "back", Shards: 4, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	produceN(t, cl, "back", 400, "v")
	id := c.Node(victim).ID()
	num := numOf(t, cl, id)
	shards, err := c.Node(victim).Store().Shards()
	if err != nil || len(shards) == 0 {
		t.Fatalf("node %d holds no shard data before it stops (%v)", num, err)
	}
	c.Stop(victim)
	waitHealthy(t, cl, 3, 3, map[uint64]bool{uint64(id): true}, 60*time.Second)
	// A topic created while it was away: its view must learn of it.
	if _, err := cl.CreateTopicAndWait(ctx, &pb.TopicSpec{Name: "while-away", Shards: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	c.Restart(victim)
	back := c.Client(victim)
	deadline := time.Now().Add(45 * time.Second)
	for {
		local, err := c.Node(victim).Store().Shards()
		_, derr := back.DescribeTopic(ctx, "while-away", false)
		if err == nil && len(local) == 0 && derr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d 45 s after it returned: data of shards %v (%v); its view of the new topic: %v", num, local, err, derr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n, _, err := replicasOn(ctx, cl, num); err != nil || n != 0 {
		t.Fatalf("node %d holds %d replicas after it returned (%v)", num, n, err)
	}
	resp, err := back.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ThisNodeNum != num {
		t.Fatalf("answered by node %d, want the returned node %d", resp.ThisNodeNum, num)
	}
}
