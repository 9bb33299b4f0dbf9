package meta

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4/statemachine"

	"shardlog/ids"
	"shardlog/placement"
)

// Result is the outcome of applying one command, as dragonboat returns it to
// the proposer: Value is the Code (0 on success); Data is the error message,
// the JSON of the created or deleted Topic, or of the registered Node.
type Result = statemachine.Result

// ApplyBytes decodes and applies one log entry. Undecodable bytes give a
// CodeInvalidArgument result; the state then changes only its Index.
func (s *State) ApplyBytes(index uint64, b []byte) Result {
	c, err := Decode(b)
	if err != nil {
		s.Index = index
		return errorResult(errorf(CodeInvalidArgument, "%v", err))
	}
	return s.Apply(index, c)
}

// Apply applies command c at Raft index index. It is pure and deterministic.
// An invalid command changes nothing but s.Index and reports its error in
// the result (see ResultError).
func (s *State) Apply(index uint64, c Command) Result {
	s.Index = index
	s.numberNodes()
	var err *Error
	var data []byte
	switch {
	case c.Op == OpRegisterNode && c.RegisterNode != nil:
		data, err = s.registerNode(index, *c.RegisterNode)
	case c.Op == OpCreateTopic && c.CreateTopic != nil:
		data, err = s.createTopic(index, c.CreateTopic)
	case c.Op == OpDeleteTopic && c.DeleteTopic != nil:
		data, err = s.deleteTopic(c.DeleteTopic.Name)
	case c.Op == OpStartMove && c.StartMove != nil:
		data, err = s.startMove(index, *c.StartMove)
	case c.Op == OpAdvanceMove && c.AdvanceMove != nil:
		data, err = s.advanceMove(*c.AdvanceMove)
	case c.Op == OpSetPreferredLeader && c.SetPreferredLeader != nil:
		data, err = s.setPreferredLeader(*c.SetPreferredLeader)
	case c.Op == OpSetNodeDraining && c.SetNodeDraining != nil:
		data, err = s.setNodeDraining(*c.SetNodeDraining)
	case c.Op == OpRemoveNode && c.RemoveNode != nil:
		data, err = s.removeNode(*c.RemoveNode)
	case c.Op == OpSetMetaVoter && c.SetMetaVoter != nil:
		data, err = s.setMetaVoter(*c.SetMetaVoter)
	case c.Op == OpNewMetaReplica && c.NewMetaReplica != nil:
		data, err = s.newMetaReplica(*c.NewMetaReplica)
	default:
		err = errorf(CodeInvalidArgument, "%v", c.check())
	}
	if err != nil {
		return errorResult(err)
	}
	return Result{Value: uint64(CodeOK), Data: data}
}

// registerNode inserts the node or updates its addresses, zone and MetaVoter,
// returning the JSON of the node as recorded.
//
// NB: with rn.MetaVoters set the voter choice is made here, in log order, and
// not by the proposer from its view: two joins proposed at once (or through
// two meta leaders in turn) would both see three voters and both become the
// fourth.
func (s *State) registerNode(index uint64, rn RegisterNode) ([]byte, *Error) {
	n := rn.Node
	if n.ID == 0 {
		return nil, errorf(CodeInvalidArgument, "node ID 0 is invalid")
	}
	if rn.MetaVoters < 0 {
		return nil, errorf(CodeInvalidArgument, "node %d: meta_voters %d is negative", uint64(n.ID), rn.MetaVoters)
	}
	if num, ok := s.Removed[n.ID]; ok {
		return nil, errorf(CodeFailedPrecondition, "node %d (%d) was removed from the cluster and cannot register again; start it with an empty --dir to join as a new node", num, uint64(n.ID))
	}
	old, ok := s.Nodes[n.ID]
	switch {
	case rn.MetaVoters > 0 && ok:
		n.MetaVoter = old.MetaVoter
	case rn.MetaVoters > 0:
		n.MetaVoter = s.metaVoters() < rn.MetaVoters
	}
	if ok {
		n.JoinedIndex, n.Num, n.Draining, n.MetaReplica = old.JoinedIndex, old.Num, old.Draining, old.MetaReplica
	} else {
		n.JoinedIndex, n.Num, n.Draining = index, s.NextNodeNum, false
		s.NextNodeNum++
	}
	s.Nodes[n.ID] = &n
	return mustJSON(n), nil
}

// metaVoters counts the registered nodes that vote in the meta group.
func (s *State) metaVoters() int {
	voters := 0
	for _, n := range s.Nodes {
		if n.MetaVoter {
			voters++
		}
	}
	return voters
}

// createTopic validates, places and records a topic, returning its JSON.
func (s *State) createTopic(index uint64, ct *CreateTopic) ([]byte, *Error) {
	limits := ct.Limits.WithDefaults()
	spec := ct.Spec
	if err := ValidateSpec(spec, limits); err != nil {
		return nil, asError(err)
	}
	if _, ok := s.Topics[spec.Name]; ok {
		return nil, errorf(CodeAlreadyExists, "topic %q already exists", spec.Name)
	}
	if len(s.Topics) >= limits.MaxTopics {
		return nil, errorf(CodeResourceExhausted, "topic %q: the cluster already has the maximum of %d topics", spec.Name, limits.MaxTopics)
	}
	candidates, cerr := s.candidates(spec.Name, ct.Candidates)
	if cerr != nil {
		return nil, cerr
	}
	if int(spec.ReplicationFactor) > len(candidates) {
		return nil, errorf(CodeFailedPrecondition, "replication factor %d exceeds the %d live nodes", spec.ReplicationFactor, len(candidates))
	}
	placed, err := placement.PlaceShards(candidates, s.placements(), int(spec.Shards), int(spec.ReplicationFactor))
	if err != nil {
		code := CodeInvalidArgument
		if errors.Is(err, placement.ErrNotEnoughNodes) {
			code = CodeFailedPrecondition
		}
		return nil, errorf(code, "topic %q: %v", spec.Name, err)
	}

	if spec.Compression == "" {
		spec.Compression = CompressionNone
	}
	t := &Topic{TopicSpec: spec, ShardList: make([]Shard, len(placed)), CreatedIndex: index}
	for i, nodes := range placed {
		sh := Shard{Index: uint32(i), ShardID: s.NextShardID, Replicas: make([]Replica, len(nodes))}
		s.NextShardID++
		for j, id := range nodes {
			sh.Replicas[j] = Replica{ReplicaID: s.NextReplicaID, NodeID: id}
			s.NextReplicaID++
		}
		t.ShardList[i] = sh
	}
	s.Topics[spec.Name] = t
	return mustJSON(t), nil
}

// candidates returns the candidate nodes of topic name with their registered
// zones, which placement keeps a shard's replicas apart by.
func (s *State) candidates(name string, nodes []ids.NodeID) ([]placement.Node, *Error) {
	out := make([]placement.Node, 0, len(nodes))
	seen := make(map[ids.NodeID]bool, len(nodes))
	for _, id := range nodes {
		n, ok := s.Nodes[id]
		if !ok {
			return nil, errorf(CodeFailedPrecondition, "topic %q: candidate node %d is not registered", name, uint64(id))
		}
		if seen[id] {
			return nil, errorf(CodeInvalidArgument, "topic %q: candidate node %d is listed twice", name, uint64(id))
		}
		seen[id] = true
		out = append(out, placement.Node{ID: id, Zone: n.Zone})
	}
	return out, nil
}

// deleteTopic removes a topic, returning its JSON.
func (s *State) deleteTopic(name string) ([]byte, *Error) {
	t, ok := s.Topics[name]
	if !ok {
		return nil, errorf(CodeNotFound, "topic %q does not exist", name)
	}
	delete(s.Topics, name)
	for _, sh := range t.ShardList {
		delete(s.Moves, sh.ShardID)
	}
	return mustJSON(t), nil
}

// placements lists every shard's replica node IDs, preferred leader first, in
// topic name and shard index order.
func (s *State) placements() [][]ids.NodeID {
	var out [][]ids.NodeID
	for _, t := range s.SortedTopics() {
		for _, sh := range t.ShardList {
			nodes := make([]ids.NodeID, len(sh.Replicas))
			for i, r := range sh.Replicas {
				nodes[i] = r.NodeID
			}
			out = append(out, nodes)
		}
	}
	return out
}

// asError converts a validation error to *Error.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errorf(CodeInvalidArgument, "%v", err)
}

// mustJSON encodes a value that cannot fail to encode (plain structs).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("meta: encode %T: %v", v, err))
	}
	return b
}
