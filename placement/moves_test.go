package placement

import (
	"shardlog/ids"
	"slices"
	"testing"
)

// up, gone, draining and down build node statuses: alive, dead for good,
// alive but draining, and not alive but not yet gone.
func up(id ids.NodeID, zone string) NodeStatus { return NodeStatus{ID: id, Zone: zone, Alive: true} }
func gone(id ids.NodeID, zone string) NodeStatus {
	return NodeStatus{ID: id, Zone: zone, Gone: true}
}
func draining(id ids.NodeID, zone string) NodeStatus {
	return NodeStatus{ID: id, Zone: zone, Alive: true, Draining: true}
}
func down(id ids.NodeID, zone string) NodeStatus { return NodeStatus{ID: id, Zone: zone} }

// shardOn returns shard id with replicas on nodes, the first preferred.
func shardOn(id ids.ShardID, nodes ...ids.NodeID) ShardStatus {
	return ShardStatus{ShardID: id, Replicas: nodes}
}

func moving(sh ShardStatus) ShardStatus { sh.Moving = true; return sh }

// upNodes returns alive nodes 1..n without zones.
func upNodes(n int) []NodeStatus {
	out := make([]NodeStatus, n)
	for i := range out {
		out[i] = up(ids.NodeID(i+1), "")
	}
	return out
}

// applyMoves returns shards with each move applied: To takes From's slot.
func applyMoves(shards []ShardStatus, moves []PlannedMove) []ShardStatus {
	out := make([]ShardStatus, len(shards))
	for i, sh := range shards {
		out[i] = sh
		out[i].Replicas = slices.Clone(sh.Replicas)
		for _, m := range moves {
			if m.ShardID != sh.ShardID {
				continue
			}
			if j := slices.Index(out[i].Replicas, m.From); j >= 0 {
				out[i].Replicas[j] = m.To
			}
		}
	}
	return out
}

// applyPreferred returns shards with each change applied: Node moves to the
// front, the others keep their relative order.
func applyPreferred(shards []ShardStatus, changes []PreferredChange) []ShardStatus {
	out := make([]ShardStatus, len(shards))
	for i, sh := range shards {
		out[i] = sh
		out[i].Replicas = slices.Clone(sh.Replicas)
		for _, c := range changes {
			if j := slices.Index(out[i].Replicas, c.Node); c.ShardID == sh.ShardID && j > 0 {
				r := out[i].Replicas
				copy(r[1:j+1], r[:j])
				r[0] = c.Node
			}
		}
	}
	return out
}

// reversed returns s with its node and shard lists in reverse order.
func reversed(s Snapshot) Snapshot {
	s.Nodes = slices.Clone(s.Nodes)
	slices.Reverse(s.Nodes)
	s.Shards = slices.Clone(s.Shards)
	slices.Reverse(s.Shards)
	return s
}

func deadMove(sh ids.ShardID, from, to ids.NodeID) PlannedMove {
	return PlannedMove{ShardID: sh, From: from, To: to, Reason: ReasonDead}
}

// zoned is 3 zones of 2 alive nodes each.
var zoned = []NodeStatus{up(1, "a"), up(2, "a"), up(3, "b"), up(4, "b"), up(5, "c"), up(6, "c")}

// planMovesCases are the golden cases of TestPlacementPlanMoves; a
// package-level table keeps the test function short.
var planMovesCases = []struct {
	name string
	snap Snapshot
	want []PlannedMove
}{
	{name: "empty snapshot, no plan", snap: Snapshot{MaxMoves: 5, Balance: true}},
	{
		name: "3 nodes rf3, one gone: no eligible target, nothing",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), gone(3, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 3, 1, 2)},
			MaxMoves: 5, Balance: true,
		},
	},
	{
		name: "4 nodes rf3, one gone: every shard on it moves to the 4th",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), up(4, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 3, 1, 2), shardOn(18, 2, 3, 1), shardOn(19, 1, 2, 4)},
			MaxMoves: 5, Balance: true,
		},
		want: []PlannedMove{deadMove(16, 3, 4), deadMove(17, 3, 4), deadMove(18, 3, 4)},
	},
	{
		name: "draining node is emptied onto the least loaded targets",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), draining(2, ""), up(3, ""), up(4, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 3, 4), shardOn(18, 3, 4, 2)},
			MaxMoves: 5,
		},
		want: []PlannedMove{
			{ShardID: 16, From: 2, To: 4, Reason: ReasonDrain},
			{ShardID: 17, From: 2, To: 1, Reason: ReasonDrain},
			{ShardID: 18, From: 2, To: 1, Reason: ReasonDrain},
		},
	},
	{
		name: "draining node that is down is emptied too",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), {ID: 2, Draining: true}, up(3, ""), up(4, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3)},
			MaxMoves: 5,
		},
		want: []PlannedMove{{ShardID: 16, From: 2, To: 4, Reason: ReasonDrain}},
	},
	{
		name: "MaxMoves budget keeps the first moves in priority order",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), up(4, "")},
			Shards:   []ShardStatus{shardOn(18, 2, 3, 1), shardOn(16, 1, 2, 3), shardOn(17, 3, 1, 2)},
			MaxMoves: 2,
		},
		want: []PlannedMove{deadMove(16, 3, 4), deadMove(17, 3, 4)},
	},
	{
		name: "MaxMoves zero plans nothing",
		snap: Snapshot{
			Nodes:  []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), up(4, "")},
			Shards: []ShardStatus{shardOn(16, 1, 2, 3)},
		},
	},
	{
		name: "Moving shards are skipped and block balance",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), up(4, ""), up(5, "")},
			Shards:   []ShardStatus{moving(shardOn(16, 1, 2, 3)), shardOn(17, 1, 2, 4), shardOn(18, 1, 2, 4)},
			MaxMoves: 5, Balance: true,
		},
	},
	{
		name: "shard without a quorum of alive replicas is skipped",
		snap: Snapshot{
			Nodes: []NodeStatus{up(1, ""), gone(2, ""), gone(3, ""), up(4, ""), up(5, ""), down(6, ""), draining(7, "")},
			Shards: []ShardStatus{
				shardOn(16, 1, 2, 3), // two of three gone
				shardOn(17, 2, 6, 1), // one gone, one down
				shardOn(18, 7, 2, 1), // draining counts as alive: quorum
				shardOn(19, 2, 1),    // two replicas need both
			},
			MaxMoves: 5,
		},
		want: []PlannedMove{deadMove(18, 2, 4)},
	},
	{
		name: "dead before drain, one move per shard",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), draining(2, ""), gone(3, ""), up(4, ""), up(5, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 4), shardOn(17, 2, 3, 1)},
			MaxMoves: 5,
		},
		want: []PlannedMove{deadMove(17, 3, 5), {ShardID: 16, From: 2, To: 5, Reason: ReasonDrain}},
	},
	{
		name: "zone rule: 3 zones x 2 nodes rf3, repair stays in the dead node's zone",
		snap: Snapshot{
			Nodes:    append(slices.Clone(zoned[1:]), gone(1, "a")),
			Shards:   []ShardStatus{shardOn(16, 1, 3, 5), shardOn(17, 2, 4, 6), shardOn(18, 4, 1, 6)},
			MaxMoves: 5,
		},
		want: []PlannedMove{deadMove(16, 1, 2), deadMove(18, 1, 2)},
	},
	{
		name: "zone rule: a whole zone gone, the least used zone then the least loaded node",
		snap: Snapshot{
			Nodes:    []NodeStatus{gone(1, "a"), gone(2, "a"), up(3, "b"), up(4, "b"), up(5, "c"), up(6, "c")},
			Shards:   []ShardStatus{shardOn(16, 1, 3, 5), shardOn(17, 2, 4, 6), shardOn(18, 6, 1, 4)},
			MaxMoves: 5,
		},
		want: []PlannedMove{deadMove(16, 1, 4), deadMove(17, 2, 3), deadMove(18, 1, 5)},
	},
	{
		name: "balance: a new empty node takes replicas until within one",
		snap: Snapshot{
			Nodes:    upNodes(4),
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 1, 3), shardOn(18, 3, 1, 2)},
			MaxMoves: 5, Balance: true,
		},
		want: []PlannedMove{
			{ShardID: 17, From: 1, To: 4, Reason: ReasonBalance},
			{ShardID: 16, From: 2, To: 4, Reason: ReasonBalance},
		},
	},
	{
		name: "balance off: no balance moves",
		snap: Snapshot{
			Nodes:    upNodes(4),
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 1, 3), shardOn(18, 3, 1, 2)},
			MaxMoves: 5,
		},
	},
	{
		name: "balance waits while a repair is pending",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), up(3, ""), gone(4, ""), up(5, ""), up(6, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 1, 3), shardOn(18, 3, 1, 4)},
			MaxMoves: 5, Balance: true,
		},
		want: []PlannedMove{deadMove(18, 4, 5)},
	},
	{
		name: "balance keeps the zone rule",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, "a"), up(2, "b"), up(3, "c"), up(4, "a")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 1, 3), shardOn(18, 3, 1, 2)},
			MaxMoves: 5, Balance: true,
		},
		want: []PlannedMove{{ShardID: 17, From: 1, To: 4, Reason: ReasonBalance}},
	},
	{
		name: "balanced cluster, no moves",
		snap: Snapshot{
			Nodes:    zoned,
			Shards:   []ShardStatus{shardOn(16, 1, 3, 5), shardOn(17, 4, 6, 2), shardOn(18, 5, 1, 4), shardOn(19, 2, 3, 6)},
			MaxMoves: 5, Balance: true,
		},
	},
	{
		name: "targets are never down, draining or gone",
		snap: Snapshot{
			Nodes: []NodeStatus{
				up(1, ""), up(2, ""), gone(3, ""), down(4, ""), draining(5, ""),
				{ID: 6, Alive: true, Gone: true}, {ID: 7, Alive: true, Draining: true, Gone: true},
			},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 1, 2, 5)},
			MaxMoves: 5, Balance: true,
		},
	},
	{
		name: "shards listed twice or repeating a node are left alone",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), up(4, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(16, 2, 1, 3), shardOn(17, 3, 1, 3)},
			MaxMoves: 5,
		},
	},
	{
		name: "nodes missing from the snapshot or listed twice are left alone",
		snap: Snapshot{
			Nodes:    []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), up(3, ""), up(4, "")},
			Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 1, 2, 99)},
			MaxMoves: 5,
		},
	},
}

func TestPlacementPlanMoves(t *testing.T) {
	for _, tt := range planMovesCases {
		t.Run(tt.name, func(t *testing.T) {
			before := applyMoves(tt.snap.Shards, nil)
			got := PlanMoves(tt.snap)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if again := PlanMoves(reversed(tt.snap)); !slices.Equal(again, got) {
				t.Fatalf("reversed input: got %+v, want %+v", again, got)
			}
			if !slices.EqualFunc(tt.snap.Shards, before, shardEqual) {
				t.Fatalf("PlanMoves changed its input: %+v, was %+v", tt.snap.Shards, before)
			}
		})
	}
}

func shardEqual(a, b ShardStatus) bool {
	return a.ShardID == b.ShardID && a.Moving == b.Moving && slices.Equal(a.Replicas, b.Replicas)
}

func TestPlacementPlanMovesFixpoint(t *testing.T) {
	snap := Snapshot{
		Nodes:    []NodeStatus{up(1, "a"), gone(2, "a"), up(3, "b"), draining(4, "b"), up(5, "c"), up(6, "c"), up(7, "a")},
		Shards:   []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 4, 5), shardOn(18, 4, 5, 6), shardOn(19, 6, 1, 2)},
		MaxMoves: 1, Balance: true,
	}
	for round := range 20 {
		moves := PlanMoves(snap)
		if len(moves) == 0 {
			if round == 0 {
				t.Fatal("no moves planned for a cluster with gone and draining nodes")
			}
			return
		}
		snap.Shards = applyMoves(snap.Shards, moves)
	}
	t.Fatalf("no fixpoint after 20 rounds: %+v", snap.Shards)
}

func TestPlacementPlanPreferredLeaders(t *testing.T) {
	chain := []ShardStatus{
		shardOn(16, 1, 2), shardOn(17, 1, 2), shardOn(18, 1, 2),
		shardOn(19, 2, 3), shardOn(20, 2, 3), shardOn(21, 3),
	}
	tests := []struct {
		name  string
		nodes []NodeStatus
		shard []ShardStatus
		max   int
		want  []PreferredChange
		next  []PreferredChange // planned after applying want
	}{
		{
			name:  "balanced, no changes",
			nodes: upNodes(3),
			shard: []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 2, 3, 1), shardOn(18, 3, 1, 2)},
			max:   5,
		},
		{
			name:  "one node preferred for all shards hands them out",
			nodes: upNodes(3),
			shard: []ShardStatus{shardOn(16, 1, 2, 3), shardOn(17, 1, 2, 3), shardOn(18, 1, 3, 2)},
			max:   5,
			want:  []PreferredChange{{ShardID: 16, Node: 2}, {ShardID: 17, Node: 3}},
		},
		{
			name:  "counts 3, 2, 1 even out through a chain",
			nodes: upNodes(3),
			shard: chain,
			max:   5,
			want:  []PreferredChange{{ShardID: 16, Node: 2}, {ShardID: 19, Node: 3}},
		},
		{
			name:  "a chain longer than the budget is applied in steps",
			nodes: upNodes(3),
			shard: chain,
			max:   1,
			want:  []PreferredChange{{ShardID: 16, Node: 2}},
			next:  []PreferredChange{{ShardID: 19, Node: 3}},
		},
		{name: "max zero, nothing", nodes: upNodes(3), shard: chain},
		{name: "no eligible node, nothing", nodes: []NodeStatus{down(1, ""), gone(2, "")}, shard: chain, max: 5},
		{
			name:  "preferred leader gone, down or draining: the least loaded eligible replica",
			nodes: []NodeStatus{up(1, ""), up(2, ""), gone(3, ""), down(4, ""), draining(5, "")},
			shard: []ShardStatus{shardOn(16, 3, 1, 2), shardOn(17, 4, 1, 2), shardOn(18, 5, 2, 1), shardOn(19, 4, 3)},
			max:   5,
			want:  []PreferredChange{{ShardID: 16, Node: 1}, {ShardID: 17, Node: 2}, {ShardID: 18, Node: 1}},
		},
		{
			name:  "Moving shards are left alone but counted",
			nodes: upNodes(2),
			shard: []ShardStatus{moving(shardOn(16, 1, 2)), moving(shardOn(17, 1, 2)), shardOn(18, 2, 1)},
			max:   5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := Snapshot{Nodes: tt.nodes, Shards: tt.shard}
			got := PlanPreferredLeaders(snap, tt.max)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if again := PlanPreferredLeaders(reversed(snap), tt.max); !slices.Equal(again, got) {
				t.Fatalf("reversed input: got %+v, want %+v", again, got)
			}
			snap.Shards = applyPreferred(snap.Shards, got)
			if again := PlanPreferredLeaders(snap, tt.max); !slices.Equal(again, tt.next) {
				t.Fatalf("replanning after applying %+v gives %+v, want %+v", got, again, tt.next)
			}
		})
	}
}

func TestPlacementApplyPreferredKeepsOrder(t *testing.T) {
	got := applyPreferred([]ShardStatus{shardOn(16, 1, 2, 3, 4)}, []PreferredChange{{ShardID: 16, Node: 3}})
	if want := []ids.NodeID{3, 1, 2, 4}; !slices.Equal(got[0].Replicas, want) {
		t.Fatalf("got %v, want %v", got[0].Replicas, want)
	}
}
