package meta

import (
	"slices"

	"shardlog/ids"
)

// MovePhase is how far a replica move has got. Each phase is recorded in the
// meta log before the step it allows is taken, so whoever leads the shard next
// (after any crash) can resume from the record: the steps are idempotent and
// checked against the shard's Raft membership.
type MovePhase string

// Move phases, in order.
const (
	// PhaseAdding: the move is recorded and its new ReplicaID allocated; the
	// shard's leader adds the new replica to the Raft group as non-voting.
	PhaseAdding MovePhase = "adding"
	// PhaseCatchingUp: the new replica is a non-voting member; its node starts
	// it, and the leader promotes it once it has caught up.
	PhaseCatchingUp MovePhase = "catching_up"
	// PhasePromoted: the new replica votes; the leader removes the old one from
	// the Raft group (after handing over leadership if the old one leads).
	PhasePromoted MovePhase = "promoted"
	// PhaseDone: the old replica is out of the Raft group; the apply replaces it
	// by the new one in the shard's replica list and forgets the move.
	PhaseDone MovePhase = "done"
	// PhaseAborted: the new replica is out of the Raft group again (it never
	// voted); the apply forgets the move and the shard keeps its replicas.
	PhaseAborted MovePhase = "aborted"
)

// Move replaces one replica of a shard by a new one on another node.
type Move struct {
	// ShardID is the shard whose replica moves.
	ShardID ids.ShardID `json:"shard_id"`
	// Topic is the shard's topic.
	Topic string `json:"topic"`
	// From is the replica being replaced.
	From Replica `json:"from"`
	// To is the new replica; its ReplicaID is allocated when the move starts.
	To Replica `json:"to"`
	// Reason is why the move was started: "dead", "drain" or "balance".
	Reason string `json:"reason"`
	// Phase is the last step recorded.
	Phase MovePhase `json:"phase"`
	// StartedIndex is the Raft index of the command that started the move.
	StartedIndex uint64 `json:"started_index"`
}

// StartMove asks for a replica move to start.
type StartMove struct {
	// ShardID is the shard whose replica moves.
	ShardID ids.ShardID `json:"shard_id"`
	// From is the node whose replica is replaced.
	From ids.NodeID `json:"from"`
	// To is the node that receives the new replica.
	To ids.NodeID `json:"to"`
	// Reason is recorded with the move.
	Reason string `json:"reason"`
}

// AdvanceMove records that a move reached Phase. ToReplica names the move's new
// replica, so a late retry cannot advance a later move of the same shard.
type AdvanceMove struct {
	// ShardID is the shard whose move advances.
	ShardID ids.ShardID `json:"shard_id"`
	// ToReplica is the move's new replica.
	ToReplica ids.ReplicaID `json:"to_replica"`
	// Phase is the phase reached: catching_up, promoted, done or aborted.
	Phase MovePhase `json:"phase"`
}

// SetPreferredLeader makes a replica of a shard its preferred leader: the
// node's replica moves to the front of the replica list, the others keep their
// order.
type SetPreferredLeader struct {
	// ShardID is the shard.
	ShardID ids.ShardID `json:"shard_id"`
	// Node holds the replica to prefer.
	Node ids.NodeID `json:"node"`
}

// startMove validates and records a move, returning its JSON.
func (s *State) startMove(index uint64, sm StartMove) ([]byte, *Error) {
	t, sh, ok := s.ShardByID(sm.ShardID)
	if !ok {
		return nil, errorf(CodeNotFound, "shard %d does not exist", uint64(sm.ShardID))
	}
	if m, ok := s.Moves[sm.ShardID]; ok {
		return nil, errorf(CodeAlreadyExists, "shard %d already has a move in progress (%s to node %d)", uint64(sm.ShardID), m.Phase, s.Num(m.To.NodeID))
	}
	from := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.NodeID == sm.From })
	if from < 0 {
		return nil, errorf(CodeFailedPrecondition, "shard %d has no replica on node %d", uint64(sm.ShardID), s.Num(sm.From))
	}
	to, ok := s.Nodes[sm.To]
	switch {
	case !ok:
		return nil, errorf(CodeFailedPrecondition, "move of shard %d: target node %d is not registered", uint64(sm.ShardID), uint64(sm.To))
	case to.Draining:
		return nil, errorf(CodeFailedPrecondition, "move of shard %d: target node %d is draining", uint64(sm.ShardID), to.Num)
	case slices.ContainsFunc(sh.Replicas, func(r Replica) bool { return r.NodeID == sm.To }):
		return nil, errorf(CodeFailedPrecondition, "move of shard %d: node %d already holds a replica", uint64(sm.ShardID), to.Num)
	}
	m := &Move{
		ShardID: sm.ShardID, Topic: t.Name, From: sh.Replicas[from],
		To:     Replica{ReplicaID: s.NextReplicaID, NodeID: sm.To, Joined: true},
		Reason: sm.Reason, Phase: PhaseAdding, StartedIndex: index,
	}
	s.NextReplicaID++
	s.Moves[sm.ShardID] = m
	return mustJSON(m), nil
}

// advanceMove records the next phase of a move, returning the move's JSON. A
// phase already recorded is accepted again (a retried proposal), as is done for
// a move that finished with the same new replica.
func (s *State) advanceMove(am AdvanceMove) ([]byte, *Error) {
	m, ok := s.Moves[am.ShardID]
	if !ok || m.To.ReplicaID != am.ToReplica {
		if am.Phase == PhaseDone && s.hasReplica(am.ShardID, am.ToReplica) {
			return nil, nil
		}
		return nil, errorf(CodeNotFound, "shard %d has no move to replica %d", uint64(am.ShardID), uint64(am.ToReplica))
	}
	if m.Phase == am.Phase {
		return mustJSON(m), nil
	}
	allowed := map[MovePhase][]MovePhase{
		PhaseAdding:     {PhaseCatchingUp, PhaseAborted},
		PhaseCatchingUp: {PhasePromoted, PhaseAborted},
		PhasePromoted:   {PhaseDone},
	}
	if !slices.Contains(allowed[m.Phase], am.Phase) {
		return nil, errorf(CodeFailedPrecondition, "move of shard %d is %s; it cannot become %s", uint64(am.ShardID), m.Phase, am.Phase)
	}
	switch am.Phase {
	case PhaseDone:
		t, _, _ := s.ShardByID(am.ShardID)
		for i := range t.ShardList {
			sh := &t.ShardList[i]
			if sh.ShardID != am.ShardID {
				continue
			}
			for j, r := range sh.Replicas {
				if r.ReplicaID == m.From.ReplicaID {
					sh.Replicas[j] = m.To
				}
			}
		}
		delete(s.Moves, am.ShardID)
	case PhaseAborted:
		delete(s.Moves, am.ShardID)
	}
	m.Phase = am.Phase
	return mustJSON(m), nil
}

// setPreferredLeader moves the node's replica to the front of the shard's list.
func (s *State) setPreferredLeader(sp SetPreferredLeader) ([]byte, *Error) {
	t, _, ok := s.ShardByID(sp.ShardID)
	if !ok {
		return nil, errorf(CodeNotFound, "shard %d does not exist", uint64(sp.ShardID))
	}
	for i := range t.ShardList {
		sh := &t.ShardList[i]
		if sh.ShardID != sp.ShardID {
			continue
		}
		j := slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.NodeID == sp.Node })
		if j < 0 {
			return nil, errorf(CodeFailedPrecondition, "shard %d has no replica on node %d", uint64(sp.ShardID), s.Num(sp.Node))
		}
		r := sh.Replicas[j]
		copy(sh.Replicas[1:j+1], sh.Replicas[:j])
		sh.Replicas[0] = r
		return mustJSON(sh), nil
	}
	return nil, errorf(CodeNotFound, "shard %d does not exist", uint64(sp.ShardID))
}

// hasReplica reports whether replicaID is one of the shard's replicas.
func (s *State) hasReplica(shardID ids.ShardID, replicaID ids.ReplicaID) bool {
	_, sh, ok := s.ShardByID(shardID)
	return ok && slices.ContainsFunc(sh.Replicas, func(r Replica) bool { return r.ReplicaID == replicaID })
}

// Num returns the readable number of a registered or removed node, 0 if the
// state does not know the node.
func (s *State) Num(id ids.NodeID) ids.NodeNum {
	if n, ok := s.Nodes[id]; ok {
		return n.Num
	}
	return s.Removed[id]
}

// MoveTargets returns the moves whose new replica is on node id and has been
// added to the shard's Raft group (catching up or promoted): the replicas the
// node must run besides those ShardsOnNode lists. Ordered by shard ID.
func (s *State) MoveTargets(id ids.NodeID) []Move {
	var out []Move
	for _, m := range s.Moves {
		if m.To.NodeID == id && (m.Phase == PhaseCatchingUp || m.Phase == PhasePromoted) {
			out = append(out, *m)
		}
	}
	slices.SortFunc(out, func(a, b Move) int { return cmpID(a.ShardID, b.ShardID) })
	return out
}

// Members returns the replicas of sh that are Raft members: its replicas, and the
// new replica of a move in progress once it was added (catching up or promoted).
// A promoted new replica can lead the shard before the move is done, so routing
// and status must know it.
func (s *State) Members(sh Shard) []Replica {
	m, ok := s.Moves[sh.ShardID]
	if !ok || (m.Phase != PhaseCatchingUp && m.Phase != PhasePromoted) {
		return sh.Replicas
	}
	return append(slices.Clone(sh.Replicas), m.To)
}

// SortedMoves returns the moves in progress ordered by shard ID (copies).
func (s *State) SortedMoves() []Move {
	out := make([]Move, 0, len(s.Moves))
	for _, m := range s.Moves {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Move) int { return cmpID(a.ShardID, b.ShardID) })
	return out
}

// ReplicaRetired reports whether a replica of shardID with replicaID that this
// node finds on its disk belongs to no shard or move of the state any more: it
// was allocated (below NextReplicaID) and is neither a replica of the shard nor
// a move's new replica. A state that lags can only answer false for a replica
// it has not heard of, never true for one that is live: allocation comes first,
// and a retired ID never returns.
func (s *State) ReplicaRetired(shardID ids.ShardID, replicaID ids.ReplicaID) bool {
	if replicaID == 0 || replicaID >= s.NextReplicaID {
		return false
	}
	if m, ok := s.Moves[shardID]; ok && m.To.ReplicaID == replicaID {
		return false
	}
	return !s.hasReplica(shardID, replicaID)
}

func cmpID[T ~uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
