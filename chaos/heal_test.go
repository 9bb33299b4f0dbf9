package chaos

import (
	"slices"
	"strings"
	"testing"

	"shardlog/proto/shardlogv1"
)

// cluster builds a DescribeCluster answer: nodes 1..n ALIVE but those in dead, and one
// topic whose shard i is on the nodes replicas[i], led by its first.
func cluster(n int, dead []uint32, replicas ...[]uint32) *shardlogv1.DescribeClusterResponse {
	resp := &shardlogv1.DescribeClusterResponse{}
	for num := uint32(1); num <= uint32(n); num++ {
		state := "ALIVE"
		for _, d := range dead {
			if d == num {
				state = "DEAD"
			}
		}
		resp.Nodes = append(resp.Nodes, &shardlogv1.NodeInfo{NodeId: uint64(100 + num), Num: num, State: state})
	}
	ti := &shardlogv1.TopicInfo{Spec: &shardlogv1.TopicSpec{Name: Topic}}
	for i, nums := range replicas {
		s := &shardlogv1.ShardInfo{Index: uint32(i), ShardId: uint64(10 + i), LeaderNodeId: uint64(100 + nums[0])}
		for _, num := range nums {
			s.Replicas = append(s.Replicas, &shardlogv1.ReplicaInfo{NodeId: uint64(100 + num), NodeNum: num})
		}
		ti.Shards = append(ti.Shards, s)
	}
	resp.Topics = []*shardlogv1.TopicInfo{ti}
	return resp
}

// TestChaosReplicationProblemsNameTheShard feeds the final replication check cluster
// descriptions that are not fully healed and checks that each fails naming the shard.
func TestChaosReplicationProblemsNameTheShard(t *testing.T) {
	killed := map[uint32]string{2: "killed forever"}
	tests := []struct {
		name string
		resp func() *shardlogv1.DescribeClusterResponse
		want []string // one problem per entry, each containing the text
	}{
		{"healed", func() *shardlogv1.DescribeClusterResponse {
			return cluster(5, []uint32{2}, []uint32{1, 3, 4}, []uint32{3, 4, 5})
		}, nil},
		{"replica on the killed node", func() *shardlogv1.DescribeClusterResponse {
			return cluster(5, []uint32{2}, []uint32{1, 3, 4}, []uint32{3, 2, 5})
		}, []string{"topic chaos shard 1: [replica on node 2 (killed forever)]"}},
		{"replica on a dead node", func() *shardlogv1.DescribeClusterResponse {
			return cluster(5, []uint32{2, 4}, []uint32{1, 3, 4}, []uint32{3, 1, 5})
		}, []string{`topic chaos shard 0: [replica on node 4 (state "DEAD")]`}},
		{"move in progress", func() *shardlogv1.DescribeClusterResponse {
			c := cluster(5, []uint32{2}, []uint32{1, 3, 4}, []uint32{3, 4, 5})
			m := &shardlogv1.MoveInfo{Topic: Topic, ShardIndex: 1, FromNode: 2, ToNode: 5, Phase: "promoted", Reason: "dead"}
			c.Topics[0].Shards[1].Move, c.Moves = m, []*shardlogv1.MoveInfo{m}
			return c
		}, []string{"topic chaos shard 1: [move from node 2 to node 5 in progress (promoted, dead)]"}},
		{"move listed only in the cluster's moves", func() *shardlogv1.DescribeClusterResponse {
			c := cluster(5, nil, []uint32{1, 3, 4})
			c.Moves = []*shardlogv1.MoveInfo{{Topic: Topic, ShardIndex: 0, FromNode: 3, ToNode: 5, Phase: "adding", Reason: "drain"}}
			return c
		}, []string{"topic chaos shard 0: move from node 3 to node 5 in progress (adding, drain)"}},
		{"too few replicas and no leader", func() *shardlogv1.DescribeClusterResponse {
			c := cluster(5, []uint32{2}, []uint32{1, 3})
			c.Topics[0].Shards[0].LeaderNodeId = 0
			return c
		}, []string{"topic chaos shard 0: [2 replicas, want 3 no leader]"}},
		{"too many replicas", func() *shardlogv1.DescribeClusterResponse {
			return cluster(5, []uint32{2}, []uint32{1, 3, 4, 5})
		}, []string{"topic chaos shard 0: [4 replicas, want 3]"}},
		{"topic missing", func() *shardlogv1.DescribeClusterResponse {
			c := cluster(5, nil)
			c.Topics = nil
			return c
		}, []string{"topic chaos: not described"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReplicationProblems(tt.resp(), []string{Topic}, 3, killed)
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("problem %q, want %q", got[i], tt.want[i])
				}
			}
		})
	}
}

// TestChaosCheckFailsUnhealedRun checks that the final replication check's problems
// and a failed drain are violations of the Report, named in its examples, and that the
// continuation of a drain is not counted as a second fault.
func TestChaosCheckFailsUnhealedRun(t *testing.T) {
	problems := ReplicationProblems(cluster(5, []uint32{2}, []uint32{1, 2, 4}), []string{Topic}, 3, map[uint32]string{2: "killed forever"})
	h := History{Seed: 7, Replication: &ReplicationResult{BoundMs: 60000, FullAfterMs: -1, Problems: problems},
		Drain:  &DrainResult{Node: "n3", Num: 3, Moved: 11, Err: "drain of n3 (node 3, 11 replicas) did not finish within 1m0s"},
		Faults: []FaultEvent{{Type: FaultDrain, Nodes: []string{"n3"}}, {Type: FaultDrain, Nodes: []string{"n3"}, Continued: true, Forever: true}}}
	r := Check(h)
	if r.Unreplicated != 1 || r.DrainFailed != 1 || r.Safe() || r.Faults[FaultDrain] != 1 {
		t.Fatalf("unreplicated %d, drain failed %d, safe %v, faults %v", r.Unreplicated, r.DrainFailed, r.Safe(), r.Faults)
	}
	if ex := r.Examples["unreplicated"]; len(ex) != 1 || !strings.Contains(ex[0], "topic chaos shard 0: [replica on node 2 (killed forever)]") {
		t.Fatalf("unreplicated examples %q", ex)
	}
	var b strings.Builder
	WriteText(&b, r)
	for _, want := range []string{"unreplicated        1", "drain failed        1", "verdict             FAIL",
		"drain               n3 (node 3): FAILED after 0.0 s, holding 11 replicas at its start"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestChaosAvailabilityFollowsMoves checks that the availability check takes a shard's
// voters from the placements seen when replicas moved, not only from its creation.
func TestChaosAvailabilityFollowsMoves(t *testing.T) {
	created := []string{"n1", "n2", "n3"}
	tests := []struct {
		name    string
		changes []Placement
		faults  []FaultEvent
		want    []Window
	}{
		{"killed forever, replaced, then another kill: the new set has a majority",
			[]Placement{{AtMs: 20, Replicas: []string{"n1", "n2", "n4"}}},
			[]FaultEvent{{Window: Window{10, 100}, Down: []string{"n3"}, Forever: true}, {Window: Window{30, 40}, Down: []string{"n1"}}},
			nil},
		{"same kill before the replacement: no majority",
			[]Placement{{AtMs: 50, Replicas: []string{"n1", "n2", "n4"}}},
			[]FaultEvent{{Window: Window{10, 100}, Down: []string{"n3"}, Forever: true}, {Window: Window{30, 40}, Down: []string{"n1"}}},
			[]Window{{30, 40}}},
		{"moved off a node that came back: the old set would count the time",
			[]Placement{{AtMs: 20, Replicas: []string{"n2", "n3", "n4"}}},
			[]FaultEvent{{Window: Window{30, 40}, Down: []string{"n4"}, Cut: [][2]string{{"n2", "n3"}}}},
			[]Window{{30, 40}}},
		{"no moves: as noMajority", nil,
			[]FaultEvent{{Window: Window{30, 40}, Down: []string{"n1", "n2"}}},
			[]Window{{30, 40}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := noMajorityMoving(created, tt.changes, tt.faults)
			if len(got) != len(tt.want) || (len(got) > 0 && !slices.Equal(got, tt.want)) {
				t.Fatalf("windows %v, want %v", got, tt.want)
			}
		})
	}
}
