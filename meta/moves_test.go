package meta

import (
	"errors"
	"shardlog/ids"
	"slices"
	"strings"
	"testing"
)

// movesState returns a state with nodes 1..n and topic "t" of `shards` shards
// at RF 3 placed on nodes 1..3.
func movesState(t *testing.T, n, shards int) *State {
	t.Helper()
	s := testState(t, n)
	r := s.Apply(uint64(n+1), createCmd(spec("t", uint32(shards), 3), candidates(1, 2, 3), Limits{}))
	if err := ResultError(r); err != nil {
		t.Fatal(err)
	}
	return s
}

func startMove(shard ids.ShardID, from, to ids.NodeID) Command {
	return Command{Op: OpStartMove, StartMove: &StartMove{ShardID: shard, From: from, To: to, Reason: "dead"}}
}

func advance(shard ids.ShardID, to ids.ReplicaID, p MovePhase) Command {
	return Command{Op: OpAdvanceMove, AdvanceMove: &AdvanceMove{ShardID: shard, ToReplica: to, Phase: p}}
}

// apply applies c at the next index and returns its error.
func apply(s *State, c Command) error { return ResultError(s.Apply(s.Index+1, c)) }

func TestMetaMoveLifecycle(t *testing.T) {
	s := movesState(t, 4, 1)
	sh := s.Topics["t"].ShardList[0].Clone()
	slot := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.NodeID == 2 })
	if err := apply(s, startMove(sh.ShardID, 2, 4)); err != nil {
		t.Fatal(err)
	}
	m := s.Moves[sh.ShardID]
	if m == nil || m.Phase != PhaseAdding || m.From.NodeID != 2 || m.To.NodeID != 4 || m.To.ReplicaID != 4 || m.Topic != "t" {
		t.Fatalf("move = %+v", m)
	}
	if s.NextReplicaID != 5 {
		t.Fatalf("NextReplicaID = %d, want 5: the new replica's ID is allocated", s.NextReplicaID)
	}
	if len(s.MoveTargets(4)) != 0 {
		t.Fatal("node 4 runs the new replica before it is a Raft member")
	}
	for _, p := range []MovePhase{PhaseCatchingUp, PhaseCatchingUp, PhasePromoted} {
		if err := apply(s, advance(sh.ShardID, 4, p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := s.MoveTargets(4); len(got) != 1 || got[0].To.ReplicaID != 4 {
			t.Fatalf("%s: move targets of node 4 = %+v", p, got)
		}
	}
	if s.ReplicaRetired(sh.ShardID, 4) || s.ReplicaRetired(sh.ShardID, m.From.ReplicaID) {
		t.Fatal("a replica of a move in progress counts as retired")
	}
	if err := apply(s, advance(sh.ShardID, 4, PhaseDone)); err != nil {
		t.Fatal(err)
	}
	got := s.Topics["t"].ShardList[0].Replicas
	if got[slot] != (Replica{ReplicaID: 4, NodeID: 4, Joined: true}) || len(got) != 3 || len(s.Moves) != 0 {
		t.Fatalf("after done: replicas %+v, moves %v; want node 4's replica in slot %d", got, s.Moves, slot)
	}
	if !s.ReplicaRetired(sh.ShardID, m.From.ReplicaID) || s.ReplicaRetired(sh.ShardID, 4) {
		t.Fatal("retired: the old replica should be, the new one not")
	}
	if len(s.ShardsOnNode(2)) != 0 || len(s.ShardsOnNode(4)) != 1 {
		t.Fatal("node 2 still holds the shard, or node 4 does not")
	}
	// A retried done after the move finished succeeds without changing anything.
	before := stateJSON(t, s)
	if err := apply(s, advance(sh.ShardID, 4, PhaseDone)); err != nil {
		t.Fatalf("retried done: %v", err)
	}
	s.Index--
	if stateJSON(t, s) != before {
		t.Fatal("a retried done changed the state")
	}
}

func TestMetaMoveRefusals(t *testing.T) {
	s := movesState(t, 5, 2)
	sh := s.Topics["t"].ShardList[0].Clone()
	other := s.Topics["t"].ShardList[1].Clone()
	if err := apply(s, startMove(sh.ShardID, 1, 4)); err != nil {
		t.Fatal(err)
	}
	if err := apply(s, Command{Op: OpSetNodeDraining, SetNodeDraining: &SetNodeDraining{Node: 5, Draining: true}}); err != nil {
		t.Fatal(err)
	}
	newID := s.Moves[sh.ShardID].To.ReplicaID
	tests := []struct {
		name string
		c    Command
		want error
	}{
		{"unknown shard", startMove(999, 1, 4), ErrNotFound},
		{"second move of a shard", startMove(sh.ShardID, 2, 4), ErrAlreadyExists},
		{"from holds no replica", startMove(other.ShardID, 4, 5), ErrFailedPrecondition},
		{"target unregistered", startMove(other.ShardID, 1, 9), ErrFailedPrecondition},
		{"target draining", startMove(other.ShardID, 1, 5), ErrFailedPrecondition},
		{"target holds a replica", startMove(other.ShardID, 1, 2), ErrFailedPrecondition},
		{"skip a phase", advance(sh.ShardID, newID, PhasePromoted), ErrFailedPrecondition},
		{"done before promoted", advance(sh.ShardID, newID, PhaseDone), ErrFailedPrecondition},
		{"unknown phase", advance(sh.ShardID, newID, "bogus"), ErrFailedPrecondition},
		{"wrong replica", advance(sh.ShardID, 77, PhaseCatchingUp), ErrNotFound},
		{"no move", advance(other.ShardID, newID, PhaseCatchingUp), ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := stateJSON(t, s)
			err := apply(s, tt.c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			s.Index--
			if stateJSON(t, s) != before {
				t.Fatal("a refused command changed the state")
			}
		})
	}
}

func TestMetaMoveAbort(t *testing.T) {
	for _, phase := range []MovePhase{PhaseAdding, PhaseCatchingUp} {
		t.Run(string(phase), func(t *testing.T) {
			s := movesState(t, 4, 1)
			sh := s.Topics["t"].ShardList[0].Clone()
			if err := apply(s, startMove(sh.ShardID, 3, 4)); err != nil {
				t.Fatal(err)
			}
			if phase == PhaseCatchingUp {
				if err := apply(s, advance(sh.ShardID, 4, phase)); err != nil {
					t.Fatal(err)
				}
			}
			if err := apply(s, advance(sh.ShardID, 4, PhaseAborted)); err != nil {
				t.Fatal(err)
			}
			if len(s.Moves) != 0 || !slices.Equal(s.Topics["t"].ShardList[0].Replicas, sh.Replicas) {
				t.Fatal("abort left a move or changed the replicas")
			}
			if !s.ReplicaRetired(sh.ShardID, 4) {
				t.Fatal("the aborted move's replica is not retired")
			}
		})
	}
	s := movesState(t, 4, 1)
	sh := s.Topics["t"].ShardList[0].Clone()
	for _, c := range []Command{startMove(sh.ShardID, 3, 4), advance(sh.ShardID, 4, PhaseCatchingUp), advance(sh.ShardID, 4, PhasePromoted)} {
		if err := apply(s, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := apply(s, advance(sh.ShardID, 4, PhaseAborted)); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("abort after promotion: %v; a replica that voted cannot be rolled back", err)
	}
}

func TestMetaDeleteTopicDropsItsMoves(t *testing.T) {
	s := movesState(t, 4, 1)
	sh := s.Topics["t"].ShardList[0].Clone()
	if err := apply(s, startMove(sh.ShardID, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if err := apply(s, Command{Op: OpDeleteTopic, DeleteTopic: &DeleteTopic{Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	if len(s.Moves) != 0 {
		t.Fatal("the deleted topic's move is still recorded")
	}
}

func TestMetaSetPreferredLeader(t *testing.T) {
	s := movesState(t, 3, 1)
	sh := s.Topics["t"].ShardList[0].Clone()
	last := sh.Replicas[2]
	if err := apply(s, Command{Op: OpSetPreferredLeader, SetPreferredLeader: &SetPreferredLeader{ShardID: sh.ShardID, Node: last.NodeID}}); err != nil {
		t.Fatal(err)
	}
	want := []Replica{last, sh.Replicas[0], sh.Replicas[1]}
	if got := s.Topics["t"].ShardList[0].Replicas; !slices.Equal(got, want) {
		t.Fatalf("replicas %+v, want %+v", got, want)
	}
	err := apply(s, Command{Op: OpSetPreferredLeader, SetPreferredLeader: &SetPreferredLeader{ShardID: sh.ShardID, Node: 9}})
	if !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("preferring a node without a replica: %v", err)
	}
}

func TestMetaNodeNumbers(t *testing.T) {
	s := movesState(t, 4, 1)
	for id := ids.NodeID(1); id <= 4; id++ {
		if s.Nodes[id].Num != ids.NodeNum(id) {
			t.Fatalf("node %d has number %d", id, s.Nodes[id].Num)
		}
	}
	// Node 4 holds nothing and does not vote: it can be removed; its number is
	// never handed out again and it cannot register again.
	if err := apply(s, Command{Op: OpRemoveNode, RemoveNode: &RemoveNode{Node: 4}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(s, register(Node{ID: 4})); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("removed node registered again: %v", err)
	}
	if err := apply(s, register(Node{ID: 5})); err != nil {
		t.Fatal(err)
	}
	if s.Nodes[5].Num != 5 || s.Num(4) != 4 {
		t.Fatalf("new node got number %d, removed node 4 reads as %d", s.Nodes[5].Num, s.Num(4))
	}
	if n, ok := s.NodeByNum(5); !ok || n.ID != 5 {
		t.Fatal("NodeByNum(5)")
	}
	// Node 1 holds a replica; a voter cannot be removed either.
	if err := apply(s, Command{Op: OpRemoveNode, RemoveNode: &RemoveNode{Node: 1}}); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("removing a node with replicas: %v", err)
	}
	if err := apply(s, Command{Op: OpSetMetaVoter, SetMetaVoter: &SetMetaVoter{Node: 5, Voter: true}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(s, Command{Op: OpRemoveNode, RemoveNode: &RemoveNode{Node: 5}}); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("removing a meta voter: %v", err)
	}
}

func TestMetaNodesWithoutNumbersGetThemInJoinOrder(t *testing.T) {
	// A state written before numbers existed: nodes joined at indexes 7, 3, 5.
	old := `{"index":9,"nodes":{"10":{"id":10,"joined_index":7},"20":{"id":20,"joined_index":3},"30":{"id":30,"joined_index":5}},"topics":{},"next_shard_id":16,"next_replica_id":1}`
	s, err := DecodeState(strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(s, register(Node{ID: 40})); err != nil {
		t.Fatal(err)
	}
	want := map[ids.NodeID]ids.NodeNum{20: 1, 30: 2, 10: 3, 40: 4}
	for id, num := range want {
		if s.Nodes[id].Num != num {
			t.Fatalf("node %d has number %d, want %d", id, s.Nodes[id].Num, num)
		}
	}
}

func TestMetaNewMetaReplica(t *testing.T) {
	s := movesState(t, 3, 1)
	if got := s.Nodes[2].MetaReplicaID(); got != 2 {
		t.Fatalf("meta replica of node 2 = %d, want its node ID", got)
	}
	next := s.NextReplicaID
	if err := apply(s, Command{Op: OpSetMetaVoter, SetMetaVoter: &SetMetaVoter{Node: 2, Voter: true}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(s, Command{Op: OpNewMetaReplica, NewMetaReplica: &NewMetaReplica{Node: 2}}); err != nil {
		t.Fatal(err)
	}
	n := s.Nodes[2]
	if n.MetaReplicaID() != uint64(next) || n.MetaVoter || s.NextReplicaID != next+1 {
		t.Fatalf("node 2 after a new meta replica: %+v (next replica ID %d)", *n, s.NextReplicaID)
	}
	if got, ok := s.NodeByMetaReplica(uint64(next)); !ok || got.ID != 2 {
		t.Fatal("NodeByMetaReplica does not find node 2 by its new meta replica")
	}
	// The node re-registering itself keeps its meta replica.
	if err := apply(s, register(Node{ID: 2, ClientAddr: "h:9"})); err != nil {
		t.Fatal(err)
	}
	if s.Nodes[2].MetaReplicaID() != uint64(next) {
		t.Fatal("re-registering dropped the new meta replica ID")
	}
	if err := apply(s, Command{Op: OpNewMetaReplica, NewMetaReplica: &NewMetaReplica{Node: 9}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("new meta replica of an unknown node: %v", err)
	}
}

func TestMetaMembersIncludeAnAddedMoveTarget(t *testing.T) {
	s := movesState(t, 4, 1)
	sh := s.Topics["t"].ShardList[0].Clone()
	if err := apply(s, startMove(sh.ShardID, 3, 4)); err != nil {
		t.Fatal(err)
	}
	to := s.Moves[sh.ShardID].To
	if got := s.Members(sh); len(got) != 3 {
		t.Fatalf("adding: members %+v; the new replica is not a Raft member yet", got)
	}
	for _, p := range []MovePhase{PhaseCatchingUp, PhasePromoted} {
		if err := apply(s, advance(sh.ShardID, to.ReplicaID, p)); err != nil {
			t.Fatal(err)
		}
		if got := s.Members(sh); len(got) != 4 || got[3] != to || !slices.Equal(got[:3], sh.Replicas) {
			t.Fatalf("%s: members %+v, want the replicas and %+v", p, got, to)
		}
	}
	if len(s.Topics["t"].ShardList[0].Replicas) != 3 {
		t.Fatal("Members changed the shard's replica list")
	}
}
