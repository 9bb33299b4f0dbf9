package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shardlog/node"
	"shardlog/node/nodetest"
	"shardlog/proto/shardlogv1"
)

// startNodes starts n real nodes and a topic of shards at rf whose shards all
// have a leader.
func startNodes(t *testing.T, n int, topic string, shards, rf uint32, opts ...nodetest.Option) *nodetest.Cluster {
	t.Helper()
	start := time.Now()
	c := nodetest.Start(t, n, opts...)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := c.Client(0).CreateTopicAndWait(ctx, &shardlogv1.TopicSpec{Name: topic, Shards: shards, ReplicationFactor: rf}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes and topic %s up in %.1f s", n, topic, time.Since(start).Seconds())
	return c
}

// shardsOn returns the IDs of the shards with a replica on node num.
func shardsOn(t *testing.T, c *nodetest.Cluster, num uint32) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := c.Client(0).DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, tp := range cl.GetTopics() {
		for _, sh := range tp.GetShards() {
			for _, r := range sh.GetReplicas() {
				if r.GetNodeNum() == num {
					ids = append(ids, sh.GetShardId())
				}
			}
		}
	}
	return ids
}

func want(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d (after %v)\nstdout:\n%s\nstderr:\n%s", r.code, code, r.took, r.stdout, r.stderr)
	}
	for _, s := range contains {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", s, r.stdout, r.stderr)
		}
	}
}

// nodeListJSON runs node list --json and returns its objects.
func nodeListJSON(t *testing.T, addr string) []map[string]any {
	t.Helper()
	r := runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "list", "--json")
	want(t, r, 0)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("node list --json: %v\n%s", err, r.stdout)
	}
	return rows
}

// TestCLINodeListDrainRemove: on 4 real nodes with a 4-shard RF 3 topic, node list
// shows the numbers 1..4 (text and JSON); bad node numbers fail with usage (2) or
// the server's reason (1); removing a node that holds replicas is refused; drain
// --wait empties node 3 with a line per moved shard and a summary; node 3 is then
// removed, and a second drain of it is refused.
func TestCLINodeListDrainRemove(t *testing.T) {
	c := startNodes(t, 4, "orders", 4, 3)
	addr := c.Addr(0)

	r := runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "list")
	want(t, r, 0, "answered by node 1, meta leader 1", "NODE  STATE  ZONE  META    REPLICAS  LEADERS  DISK")
	for _, num := range []string{"1", "2", "3", "4"} {
		if !regexp.MustCompile(`(?m)^` + num + ` +ALIVE +- +(leader|voter|-) +\d+ +\d+ +ok`).MatchString(r.stdout) {
			t.Fatalf("node list has no ALIVE row for node %s:\n%s", num, r.stdout)
		}
	}
	rows := nodeListJSON(t, addr)
	keys := []string{"client_addr", "disk", "disk_free_bytes", "disk_full", "draining", "leaders", "meta_leader", "meta_voter", "node", "replicas", "state", "zone"}
	for i, row := range rows {
		if got := slices.Sorted(maps.Keys(row)); !slices.Equal(got, keys) || row["node"] != float64(i+1) || row["state"] != "ALIVE" {
			t.Fatalf("node list --json row %d: %v (keys %v, want %v)", i, row, got, keys)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("node list --json: %d rows", len(rows))
	}

	want(t, runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "drain", "abc"), 2, `node number "abc": want a number`, "usage: shardlog node drain N")
	want(t, runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "drain", "0"), 2, "node number 0 is invalid")
	r = runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "drain", "99")
	checkOneLine(t, r, 1, "shardlog: node 99 does not exist (see shardlog node list)")
	r = runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "remove", "4")
	checkOneLine(t, r, 1, "node 4 still holds", "replicas: drain it first")

	held := shardsOn(t, c, 3)
	r = runBounded(t, t.Context(), addr, nil, 40*time.Second, "node", "drain", "3", "--wait", "--timeout", "35s")
	want(t, r, 0, "remove it with: shardlog node remove 3")
	moved := regexp.MustCompile(`(?m)^moved shard orders/\d \(id \d+\): r\d+@3 -> r\d+@[124]$`).FindAllString(r.stdout, -1)
	summary := regexp.MustCompile(fmt.Sprintf(`(?m)^node 3 drained: %d replicas moved in [0-9.]+ s; it holds no replica and leads nothing; `, len(held)))
	if len(moved) != len(held) || !summary.MatchString(r.stdout) {
		t.Fatalf("drain --wait of node 3 (held %d shards): %d moved lines\n%s", len(held), len(moved), r.stdout)
	}
	t.Logf("drain --wait took %.1f s:\n%s", r.took.Seconds(), r.stdout)
	if left := shardsOn(t, c, 3); len(left) != 0 {
		t.Fatalf("node 3 still holds shards %v", left)
	}

	r = runBounded(t, t.Context(), addr, nil, 10*time.Second, "describe-topic", "orders")
	want(t, r, 0, "SHARD  SHARD_ID  LEADER  REPLICAS")
	if strings.Contains(r.stdout, "@3") || strings.Contains(r.stdout, "under-replicated") {
		t.Fatalf("describe-topic after the drain:\n%s", r.stdout)
	}

	r = runBounded(t, t.Context(), addr, nil, 10*time.Second, "describe-topic", "orders", "--json")
	var tj topicJSON
	if err := json.Unmarshal([]byte(r.stdout), &tj); err != nil || r.code != 0 || tj.Name != "orders" || len(tj.ShardList) != 4 {
		t.Fatalf("describe-topic --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	for _, sh := range tj.ShardList {
		for _, rep := range sh.Replicas {
			if rep.Node == 3 || rep.Node == 0 || sh.Leader == 0 || sh.UnderReplicated {
				t.Fatalf("describe-topic --json shard %+v", sh)
			}
		}
	}
	r = runBounded(t, t.Context(), addr, nil, 10*time.Second, "dump")
	want(t, r, 0, "cluster: answered by node 1, meta leader 1", "\nMOVES\n")
	if !regexp.MustCompile(`(?m)^3 +ALIVE,DRAINING `).MatchString(r.stdout) {
		t.Fatalf("dump does not show node 3 draining:\n%s", r.stdout)
	}

	want(t, runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "remove", "3"), 0, "node 3 removed; its number is never used again")
	want(t, runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "remove", "3", "--json"), 0, `"removed": true`)
	r = runBounded(t, t.Context(), addr, nil, 10*time.Second, "node", "drain", "3")
	checkOneLine(t, r, 1, "shardlog: node 3 was removed from the cluster")
	if rows := nodeListJSON(t, addr); len(rows) != 3 || rows[2]["node"] != float64(4) {
		t.Fatalf("node list after the remove: %v", rows)
	}
}

// TestCLIClusterHealthUnderReplicatedThenHealed: cluster health exits 0 on a
// healthy cluster, 3 while a stopped node's shards are under-replicated (before
// --dead-after passes), and 0 again once they moved to the live nodes; then it
// names the dead node as one to remove.
func TestCLIClusterHealthUnderReplicatedThenHealed(t *testing.T) {
	c := startNodes(t, 4, "events", 4, 3, func(_ int, cfg *node.Config) { cfg.DeadAfter = 3 * time.Second })
	addr := c.Addr(0)
	r := pollHealth(t, addr, 10*time.Second, 0)
	want(t, r, 0, "healthy: 4 nodes, 4 shards, all fully replicated and led")

	c.Stop(2) // node 3, a meta voter
	stopped := time.Now()
	r = pollHealth(t, addr, 10*time.Second, 3)
	want(t, r, 3, "unhealthy: ", "under-replicated", "under-replicated shards:\n  events/", "@3(")
	t.Logf("%.1f s after the stop:\n%s", time.Since(stopped).Seconds(), r.stdout)
	rj := runBounded(t, t.Context(), addr, nil, 10*time.Second, "cluster", "health", "--json")
	var rep healthReport
	if err := json.Unmarshal([]byte(rj.stdout), &rep); err != nil || rj.code != 3 || rep.Healthy || rep.Nodes != 4 || rep.Shards != 4 {
		t.Fatalf("cluster health --json: exit %d, %v\n%s", rj.code, err, rj.stdout)
	}

	r = pollHealth(t, addr, 35*time.Second, 0)
	want(t, r, 0, "healthy: 4 nodes, 4 shards", "note: node 3 is ", "and holds nothing: remove it with shardlog node remove 3")
	t.Logf("healthy again %.1f s after the stop:\n%s", time.Since(stopped).Seconds(), r.stdout)
}

// pollHealth runs cluster health until it exits with code, for up to bound.
func pollHealth(t *testing.T, addr string, bound time.Duration, code int) result {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		r := runBounded(t, t.Context(), addr, nil, 15*time.Second, "cluster", "health")
		if r.code == code || time.Now().After(deadline) {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// drainFake is an admin server whose node 3 holds two replicas that never move;
// after cancelAfter DescribeCluster calls (0: never) its drain reads as cancelled.
type drainFake struct {
	shardlogv1.UnimplementedAdminServer
	mu          sync.Mutex
	draining    bool
	calls       int
	cancelAfter int
}

func (f *drainFake) DrainNode(_ context.Context, req *shardlogv1.DrainNodeRequest) (*shardlogv1.DrainNodeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.draining = !req.GetCancel()
	return &shardlogv1.DrainNodeResponse{Node: &shardlogv1.NodeInfo{Num: req.GetNode(), Draining: f.draining}}, nil
}

func (f *drainFake) DescribeCluster(context.Context, *shardlogv1.DescribeClusterRequest) (*shardlogv1.DescribeClusterResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.cancelAfter > 0 && f.calls > f.cancelAfter {
		f.draining = false
	}
	return fakeCluster(f.draining), nil
}

// fakeCluster: nodes 1..4, node 1 the meta leader; topic t with shards on 1,2,3
// and 3,4,2.
func fakeCluster(draining bool) *shardlogv1.DescribeClusterResponse {
	cl := &shardlogv1.DescribeClusterResponse{ThisNodeId: 101, ThisNodeNum: 1, MetaLeaderNodeId: 101, MetaLeaderNum: 1}
	for n := uint32(1); n <= 4; n++ {
		cl.Nodes = append(cl.Nodes, &shardlogv1.NodeInfo{NodeId: uint64(100 + n), Num: n, State: "ALIVE", Draining: draining && n == 3})
	}
	shard := func(idx uint32, id uint64, nodes ...uint32) *shardlogv1.ShardInfo {
		sh := &shardlogv1.ShardInfo{Index: idx, ShardId: id, LeaderNodeId: uint64(100 + nodes[0])}
		for i, n := range nodes {
			sh.Replicas = append(sh.Replicas, &shardlogv1.ReplicaInfo{ReplicaId: id*10 + uint64(i), NodeId: uint64(100 + n), NodeNum: n, Leader: i == 0})
		}
		return sh
	}
	cl.Topics = []*shardlogv1.TopicInfo{{Spec: &shardlogv1.TopicSpec{Name: "t", Shards: 2, ReplicationFactor: 3},
		Shards: []*shardlogv1.ShardInfo{shard(0, 1, 1, 2, 3), shard(1, 2, 3, 4, 2)}}}
	return cl
}

// TestCLINodeDrainWaitEnds: a drain --wait that cannot finish ends at --timeout
// (saying how many replicas are left, and with --json still printing its object),
// at once on SIGINT, and with an error when the drain is cancelled meanwhile.
func TestCLINodeDrainWaitEnds(t *testing.T) {
	f := &drainFake{}
	addr := serve(t, f, hungServer{})
	r := runBounded(t, t.Context(), addr, nil, time.Second+slack, "node", "drain", "3", "--wait", "--timeout", "1s")
	checkOneLine(t, r, 1, "shardlog: node 3 not drained within 1s (--timeout): 2 replicas left on it; the drain goes on")

	r = runBounded(t, t.Context(), addr, nil, time.Second+slack, "--timeout", "1s", "node", "drain", "3", "--wait", "--json")
	var res drainResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 || res.Drained || res.Remaining != 2 || res.Node != 3 || res.Moved == nil {
		t.Fatalf("drain --wait --json at timeout: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	ctx := interruptAfter(t, 700*time.Millisecond, os.Interrupt)
	r = runBounded(t, ctx, addr, nil, 700*time.Millisecond+slack, "node", "drain", "3", "--wait")
	checkOneLine(t, r, 130, "shardlog: interrupted by SIGINT: node 3: 2 replicas left; the drain goes on (stop it: shardlog node drain 3 --cancel)")

	f.mu.Lock()
	f.calls, f.cancelAfter = 0, 3
	f.mu.Unlock()
	r = runBounded(t, t.Context(), addr, nil, 5*time.Second, "node", "drain", "3", "--wait")
	checkOneLine(t, r, 1, "shardlog: the drain of node 3 was cancelled with 2 replicas left on it")

	r = runBounded(t, t.Context(), addr, nil, 5*time.Second, "node", "drain", "3")
	want(t, r, 0, "node 3: draining, 2 replicas to move\n")
	r = runBounded(t, t.Context(), addr, nil, 5*time.Second, "node", "drain", "3", "--cancel")
	want(t, r, 0, "node 3: drain cancelled; it holds 2 replicas and receives replicas again\n")
	want(t, runBounded(t, t.Context(), addr, nil, 5*time.Second, "node", "drain", "3", "--cancel", "--wait"), 2, "--wait and --cancel exclude each other")
}

// TestCLINodeDrainTrackerLines: a shard whose replica left the node gets one line,
// naming the replica that replaced it; a shard still on the node gets none.
func TestCLINodeDrainTrackerLines(t *testing.T) {
	before := fakeCluster(true)
	tr := newDrainTracker(3, before)
	if tr.left != 2 {
		t.Fatalf("left %d, want 2", tr.left)
	}
	after := fakeCluster(true)
	sh := after.Topics[0].Shards[0]
	sh.Replicas[2] = &shardlogv1.ReplicaInfo{ReplicaId: 40, NodeId: 104, NodeNum: 4}
	lines := tr.update(after)
	if want := []string{"moved shard t/0 (id 1): r12@3 -> r40@4"}; !slices.Equal(lines, want) || tr.left != 1 {
		t.Fatalf("lines %q (left %d), want %q", lines, tr.left, want)
	}
	if lines := tr.update(after); len(lines) != 0 {
		t.Fatalf("second update: %q", lines)
	}
	after.Topics = nil
	if lines := tr.update(after); len(lines) != 1 || !strings.Contains(lines[0], "shard t/1 (id 2) no longer exists") || tr.left != 0 {
		t.Fatalf("deleted topic: %q", lines)
	}
}

func TestCLIClusterHealthVerdicts(t *testing.T) {
	tests := []struct {
		name    string
		change  func(cl *shardlogv1.DescribeClusterResponse)
		healthy bool
		want    []string
	}{
		{name: "all fine", change: func(*shardlogv1.DescribeClusterResponse) {}, healthy: true,
			want: []string{"healthy: 4 nodes, 2 shards, all fully replicated and led"}},
		{name: "dead node holding nothing", healthy: true, change: func(cl *shardlogv1.DescribeClusterResponse) {
			cl.Nodes = append(cl.Nodes, &shardlogv1.NodeInfo{Num: 5, State: "DEAD"})
		}, want: []string{"healthy: 5 nodes", "note: node 5 is DEAD and holds nothing: remove it with shardlog node remove 5"}},
		{name: "suspect voter holding replicas", change: func(cl *shardlogv1.DescribeClusterResponse) {
			cl.Nodes[2].State, cl.Nodes[2].MetaVoter, cl.Nodes[2].Replicas = "SUSPECT", true, 2
			cl.Topics[0].Shards[1].UnderReplicated, cl.Topics[0].Shards[1].LeaderNodeId = true, 0
		}, want: []string{"unhealthy: 1 under-replicated, 1 leaderless, 1 meta voter not ALIVE, 1 node not ALIVE holding replicas",
			"under-replicated shards:\n  t/1 (id 2): r20@3(SUSPECT),r21@4,r22@2\n", "node 3 (SUSPECT): 2 replicas"}},
		{name: "move and full disk", change: func(cl *shardlogv1.DescribeClusterResponse) {
			cl.Moves = []*shardlogv1.MoveInfo{{ShardId: 1, Topic: "t", FromReplicaId: 12, FromNode: 3, ToReplicaId: 40, ToNode: 4, Phase: "catching_up", Reason: "drain"}}
			cl.Nodes[1].DiskFull = true
			cl.Nodes[2].Draining, cl.Nodes[2].Replicas = true, 2
		}, want: []string{"unhealthy: 1 move in progress, 1 node DISK_FULL", "  t/0 (id 1): r12@3->r40@4 catching_up (drain)",
			"node 2 (ALIVE): DISK_FULL", "note: node 3 is draining: 2 replicas left on it"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := fakeCluster(false)
			tc.change(cl)
			r := checkHealth(cl)
			var out bytes.Buffer
			writeHealth(&env{stdout: &out}, r)
			if r.Healthy != tc.healthy {
				t.Fatalf("healthy %t, want %t:\n%s", r.Healthy, tc.healthy, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCLIShardStatusMarks(t *testing.T) {
	mv := &shardlogv1.MoveInfo{FromReplicaId: 7, FromNode: 3, ToReplicaId: 40, ToNode: 5, Phase: "catching_up"}
	tests := []struct {
		name string
		sh   *shardlogv1.ShardInfo
		want string
	}{
		{name: "ok", sh: &shardlogv1.ShardInfo{}, want: "ok"},
		{name: "under-replicated", sh: &shardlogv1.ShardInfo{UnderReplicated: true}, want: "under-replicated"},
		{name: "moving", sh: &shardlogv1.ShardInfo{Move: mv}, want: "moving r7@3->r40@5 catching_up"},
		{name: "all", sh: &shardlogv1.ShardInfo{StatusError: "no leader", UnderReplicated: true, Move: mv},
			want: "no leader; under-replicated; moving r7@3->r40@5 catching_up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := shardStatus(tc.sh); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
