package meta

import (
	"cmp"
	"slices"

	"shardlog/ids"
)

// SetNodeDraining starts (Draining true) or cancels a drain of a node.
type SetNodeDraining struct {
	// Node is the node's ID.
	Node ids.NodeID `json:"node"`
	// Draining is the new flag.
	Draining bool `json:"draining"`
}

// RemoveNode removes a node from the cluster for good. Apply refuses while the
// node holds a replica or a move targets it, and while it votes in the meta
// group: the proposer first takes it out of the meta Raft group.
type RemoveNode struct {
	// Node is the node's ID.
	Node ids.NodeID `json:"node"`
}

// SetMetaVoter records that a node became (Voter true) or stopped being a
// voting member of the meta Raft group. The proposer changes the Raft
// membership first; this keeps the table in step with it.
type SetMetaVoter struct {
	// Node is the node's ID.
	Node ids.NodeID `json:"node"`
	// Voter is the node's new role.
	Voter bool `json:"voter"`
}

// NewMetaReplica gives a registered node a new replica ID in the meta group, as a
// non-voter: its old one was removed from the group while the node was gone.
type NewMetaReplica struct {
	// Node is the node's ID.
	Node ids.NodeID `json:"node"`
}

// newMetaReplica allocates the node's new meta replica ID, returning its JSON.
func (s *State) newMetaReplica(nm NewMetaReplica) ([]byte, *Error) {
	n, ok := s.Nodes[nm.Node]
	if !ok {
		return nil, s.unknownNode(nm.Node)
	}
	n.MetaReplica = s.NextReplicaID
	s.NextReplicaID++
	n.MetaVoter = false
	return mustJSON(n), nil
}

// setNodeDraining sets or clears a node's Draining flag, returning its JSON.
func (s *State) setNodeDraining(sd SetNodeDraining) ([]byte, *Error) {
	n, ok := s.Nodes[sd.Node]
	if !ok {
		return nil, s.unknownNode(sd.Node)
	}
	n.Draining = sd.Draining
	return mustJSON(n), nil
}

// removeNode deletes a node that holds nothing, keeping its number in Removed.
func (s *State) removeNode(rn RemoveNode) ([]byte, *Error) {
	n, ok := s.Nodes[rn.Node]
	if !ok {
		return nil, s.unknownNode(rn.Node)
	}
	if held := len(s.ShardsOnNode(rn.Node)); held > 0 {
		return nil, errorf(CodeFailedPrecondition, "node %d still holds %d replicas: drain it first (node drain %d), or wait until its replicas were moved", n.Num, held, n.Num)
	}
	for _, m := range s.Moves {
		if m.To.NodeID == rn.Node {
			return nil, errorf(CodeFailedPrecondition, "node %d is the target of the move of shard %d", n.Num, uint64(m.ShardID))
		}
	}
	if n.MetaVoter {
		return nil, errorf(CodeFailedPrecondition, "node %d still votes in the meta group", n.Num)
	}
	delete(s.Nodes, rn.Node)
	s.Removed[rn.Node] = n.Num
	return mustJSON(n), nil
}

// setMetaVoter records a node's meta group role, returning its JSON.
func (s *State) setMetaVoter(sv SetMetaVoter) ([]byte, *Error) {
	n, ok := s.Nodes[sv.Node]
	if !ok {
		return nil, s.unknownNode(sv.Node)
	}
	n.MetaVoter = sv.Voter
	return mustJSON(n), nil
}

// unknownNode is the error for a command naming a node not in the table.
func (s *State) unknownNode(id ids.NodeID) *Error {
	if num, ok := s.Removed[id]; ok {
		return errorf(CodeFailedPrecondition, "node %d was removed from the cluster", num)
	}
	return errorf(CodeNotFound, "node %d is not registered", uint64(id))
}

// numberNodes gives every node without a readable number one, in the order
// they joined (then by ID): nodes registered before numbers existed get them
// at the first command applied after the upgrade, the same on every replica.
func (s *State) numberNodes() {
	var missing []*Node
	for _, n := range s.Nodes {
		if n.Num == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	slices.SortFunc(missing, func(a, b *Node) int {
		return cmp.Or(cmp.Compare(a.JoinedIndex, b.JoinedIndex), cmp.Compare(a.ID, b.ID))
	})
	for _, n := range missing {
		n.Num = s.NextNodeNum
		s.NextNodeNum++
	}
}

// NodeByNum finds the node with readable number num.
func (s *State) NodeByNum(num ids.NodeNum) (*Node, bool) {
	for _, n := range s.Nodes {
		if n.Num == num {
			return n, true
		}
	}
	return nil, false
}
