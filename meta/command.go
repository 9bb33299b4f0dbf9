package meta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"shardlog/ids"
)

// Command operations: the "op" field of an encoded Command.
const (
	// OpRegisterNode inserts or updates a node.
	OpRegisterNode = "register_node"
	// OpCreateTopic creates a topic and places its shards.
	OpCreateTopic = "create_topic"
	// OpDeleteTopic deletes a topic.
	OpDeleteTopic = "delete_topic"
	// OpStartMove starts a replica move.
	OpStartMove = "start_move"
	// OpAdvanceMove records the next phase of a move.
	OpAdvanceMove = "advance_move"
	// OpSetPreferredLeader reorders a shard's replicas.
	OpSetPreferredLeader = "set_preferred_leader"
	// OpSetNodeDraining starts or cancels a node's drain.
	OpSetNodeDraining = "set_node_draining"
	// OpRemoveNode removes an empty node for good.
	OpRemoveNode = "remove_node"
	// OpSetMetaVoter records a node's meta group role.
	OpSetMetaVoter = "set_meta_voter"
	// OpNewMetaReplica gives a node a new meta replica ID.
	OpNewMetaReplica = "new_meta_replica"
)

// Command is one entry of the meta group's log. Exactly the payload named by
// Op is set.
type Command struct {
	// Op names the operation and thus the payload.
	Op string `json:"op"`
	// RegisterNode is the node to insert or update (OpRegisterNode).
	RegisterNode *RegisterNode `json:"register_node,omitempty"`
	// CreateTopic is the topic to create (OpCreateTopic).
	CreateTopic *CreateTopic `json:"create_topic,omitempty"`
	// DeleteTopic names the topic to delete (OpDeleteTopic).
	DeleteTopic *DeleteTopic `json:"delete_topic,omitempty"`
	// StartMove is the move to start (OpStartMove).
	StartMove *StartMove `json:"start_move,omitempty"`
	// AdvanceMove is the phase a move reached (OpAdvanceMove).
	AdvanceMove *AdvanceMove `json:"advance_move,omitempty"`
	// SetPreferredLeader reorders a shard's replicas (OpSetPreferredLeader).
	SetPreferredLeader *SetPreferredLeader `json:"set_preferred_leader,omitempty"`
	// SetNodeDraining sets a node's drain flag (OpSetNodeDraining).
	SetNodeDraining *SetNodeDraining `json:"set_node_draining,omitempty"`
	// RemoveNode names the node to remove (OpRemoveNode).
	RemoveNode *RemoveNode `json:"remove_node,omitempty"`
	// SetMetaVoter records a node's meta role (OpSetMetaVoter).
	SetMetaVoter *SetMetaVoter `json:"set_meta_voter,omitempty"`
	// NewMetaReplica names the node to give a new meta replica ID (OpNewMetaReplica).
	NewMetaReplica *NewMetaReplica `json:"new_meta_replica,omitempty"`
}

// RegisterNode asks for a node to be inserted or updated. Its JSON is the
// node's with meta_voters added, so entries written before the field existed
// decode with MetaVoters zero.
type RegisterNode struct {
	Node
	// MetaVoters is the number of meta voters the proposer is configured for.
	// Above zero (a join), apply chooses Node.MetaVoter itself: a registered
	// node keeps its flag, a new one votes while fewer than MetaVoters nodes
	// do. Zero (the node re-registering itself, and every entry written
	// before the field existed) applies Node.MetaVoter as given.
	MetaVoters int `json:"meta_voters,omitempty"`
}

// CreateTopic asks for a topic to be created and placed.
type CreateTopic struct {
	// Spec is the requested topic.
	Spec TopicSpec `json:"spec"`
	// Candidates are the IDs of the live nodes the proposer allows replicas
	// on; each must be registered, and apply places by its registered zone.
	Candidates []ids.NodeID `json:"candidates"`
	// Limits are the proposer's configured limits; zero fields mean defaults.
	Limits Limits `json:"limits"`
}

// UnmarshalJSON decodes a CreateTopic whose candidates are node IDs
// ([1,2]) or, as entries written to the meta log before the candidates
// became IDs hold them, placement's node objects ([{"ID":1,"Zone":"a"}]).
// The zone of an old entry is dropped: apply always used the registered one.
func (ct *CreateTopic) UnmarshalJSON(b []byte) error {
	type plain CreateTopic // without this method
	var raw struct {
		plain
		Candidates []json.RawMessage `json:"candidates"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("create_topic: %w", err)
	}
	*ct = CreateTopic(raw.plain)
	ct.Candidates = nil
	if raw.Candidates != nil {
		ct.Candidates = make([]ids.NodeID, len(raw.Candidates))
	}
	for i, c := range raw.Candidates {
		id, err := decodeCandidate(c)
		if err != nil {
			return fmt.Errorf("create_topic: candidate %d: %w", i, err)
		}
		ct.Candidates[i] = id
	}
	return nil
}

// decodeCandidate reads one candidate: a node ID, or an object with an "ID"
// field (the old form, matched case-insensitively as encoding/json does).
func decodeCandidate(b json.RawMessage) (ids.NodeID, error) {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var old struct {
			ID ids.NodeID `json:"ID"`
		}
		err := json.Unmarshal(t, &old)
		return old.ID, err
	}
	var id ids.NodeID
	err := json.Unmarshal(b, &id)
	return id, err
}

// DeleteTopic asks for a topic to be deleted.
type DeleteTopic struct {
	// Name is the topic to delete.
	Name string `json:"name"`
}

// Encode returns the command's JSON encoding after checking that it is
// well-formed (see Decode).
func Encode(c Command) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("meta: encode command: %w", err)
	}
	return b, nil
}

// Decode parses an encoded command. It fails with ErrInvalidCommand for bytes
// that are not JSON, name an unknown op, or do not carry exactly the payload
// of their op.
func Decode(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	if err := c.check(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// check reports whether the command carries exactly the payload of its op.
func (c Command) check() error {
	payloads := map[string]bool{
		OpRegisterNode:       c.RegisterNode != nil,
		OpCreateTopic:        c.CreateTopic != nil,
		OpDeleteTopic:        c.DeleteTopic != nil,
		OpStartMove:          c.StartMove != nil,
		OpAdvanceMove:        c.AdvanceMove != nil,
		OpSetPreferredLeader: c.SetPreferredLeader != nil,
		OpSetNodeDraining:    c.SetNodeDraining != nil,
		OpRemoveNode:         c.RemoveNode != nil,
		OpSetMetaVoter:       c.SetMetaVoter != nil,
		OpNewMetaReplica:     c.NewMetaReplica != nil,
	}
	set := 0
	for _, p := range payloads {
		if p {
			set++
		}
	}
	ok, known := payloads[c.Op]
	if !known {
		return fmt.Errorf("%w: unknown op %q", ErrInvalidCommand, c.Op)
	}
	if !ok || set != 1 {
		return fmt.Errorf("%w: op %q needs exactly its own payload", ErrInvalidCommand, c.Op)
	}
	return nil
}
