package meta

import (
	"cmp"
	"maps"
	"shardlog/ids"
	"slices"
)

// ShardID is the dragonboat shard ID of the meta Raft group.
const ShardID ids.ShardID = 1

// FirstDataShardID is the first ShardID allocated to topic shards; IDs below it
// are reserved for system groups (1 is the meta group).
const FirstDataShardID ids.ShardID = 16

// Node is a registered cluster member.
type Node struct {
	// ID is the node's ID; never zero.
	ID ids.NodeID `json:"id"`
	// ClientAddr is the host:port of the node's gRPC API.
	ClientAddr string `json:"client_addr"`
	// RaftAddr is the host:port of the node's dragonboat NodeHost.
	RaftAddr string `json:"raft_addr"`
	// GossipAddr is the host:port of the node's memberlist agent.
	GossipAddr string `json:"gossip_addr"`
	// Zone is the node's failure domain; placement keeps a shard's replicas
	// in distinct zones where it can.
	Zone string `json:"zone"`
	// MetaVoter is true when the node is (to be) a voting member of the meta
	// group rather than a non-voting one.
	MetaVoter bool `json:"meta_voter"`
	// JoinedIndex is the Raft index at which the node was first registered;
	// set by the apply, ignored in commands.
	JoinedIndex uint64 `json:"joined_index"`
	// Num is the node's readable number (1, 2, 3, ...), allocated by the apply
	// that first registers it and never reused; ignored in commands.
	Num ids.NodeNum `json:"num"`
	// Draining is set while an operator empties the node (node drain): its
	// replicas move off and it receives none.
	Draining bool `json:"draining,omitempty"`
	// MetaReplica is the node's replica ID in the meta group when it is not the
	// node ID: a node whose meta replica was removed while it was gone rejoins
	// with a new one (dragonboat never lets a removed ID back). 0: the node ID.
	MetaReplica ids.ReplicaID `json:"meta_replica,omitempty"`
}

// MetaReplicaID is the node's replica ID in the meta Raft group.
func (n *Node) MetaReplicaID() uint64 {
	if n.MetaReplica != 0 {
		return uint64(n.MetaReplica)
	}
	return uint64(n.ID)
}

// NodeByMetaReplica finds the node whose meta replica ID is rid.
func (s *State) NodeByMetaReplica(rid uint64) (*Node, bool) {
	for _, n := range s.Nodes {
		if n.MetaReplicaID() == rid {
			return n, true
		}
	}
	return nil, false
}

// Replica is one shard replica: its dragonboat ReplicaID and the node hosting it.
type Replica struct {
	// ReplicaID is the dragonboat ReplicaID, allocated by meta and never reused.
	ReplicaID ids.ReplicaID `json:"replica_id"`
	// NodeID is the node hosting the replica.
	NodeID ids.NodeID `json:"node_id"`
	// Joined is set on a replica a move added to a running shard: it joined as a
	// non-voting member and must restart as one (the replay of its log, or the
	// snapshot's membership, promotes it again).
	Joined bool `json:"joined,omitempty"`
}

// Shard is one partition of a topic and one Raft group.
type Shard struct {
	// Index is the shard's position in its topic, 0..Shards-1.
	Index uint32 `json:"index"`
	// ShardID is the dragonboat ShardID, allocated by meta and never reused.
	ShardID ids.ShardID `json:"shard_id"`
	// Replicas lists the shard's replicas; Replicas[0] is the preferred leader.
	Replicas []Replica `json:"replicas"`
}

// Clone returns a deep copy of the shard.
func (sh Shard) Clone() Shard {
	sh.Replicas = slices.Clone(sh.Replicas)
	return sh
}

// TopicSpec is what a client asks for when creating a topic.
type TopicSpec struct {
	// Name is the topic name, [A-Za-z0-9._-]{1,200}.
	Name string `json:"name"`
	// Shards is the number of shards (partitions).
	Shards uint32 `json:"shards"`
	// ReplicationFactor is the number of replicas of every shard.
	ReplicationFactor uint32 `json:"replication_factor"`
	// RetentionMs drops records older than this many milliseconds; 0 keeps
	// them for ever.
	RetentionMs int64 `json:"retention_ms"`
	// RetentionBytes drops the oldest records of a shard above this many
	// bytes; 0 means no size limit.
	RetentionBytes int64 `json:"retention_bytes"`
	// Compression is the batch codec: "none", "s2" or "zstd" ("" is
	// normalised to "none" when the topic is created).
	Compression string `json:"compression"`
}

// Topic is a created topic with its shard placement.
type Topic struct {
	TopicSpec
	// ShardList holds the topic's shards in index order. (It is not named
	// Shards because TopicSpec.Shards is the count.)
	ShardList []Shard `json:"shard_list"`
	// CreatedIndex is the Raft index of the command that created the topic.
	CreatedIndex uint64 `json:"created_index"`
}

// Clone returns a deep copy of the topic.
func (t *Topic) Clone() *Topic {
	c := *t
	c.ShardList = make([]Shard, len(t.ShardList))
	for i, sh := range t.ShardList {
		c.ShardList[i] = sh.Clone()
	}
	return &c
}

// ShardRef is a shard replica hosted by one node, as returned by ShardsOnNode.
type ShardRef struct {
	// Topic is the name of the shard's topic.
	Topic string `json:"topic"`
	// Shard is a copy of the shard.
	Shard Shard `json:"shard"`
	// ReplicaID is the node's replica of the shard.
	ReplicaID ids.ReplicaID `json:"replica_id"`
}

// State is the metadata state machine's state. It is not safe for concurrent
// use: the state machine guards it, and Lookup hands out copies.
type State struct {
	// Index is the Raft index of the last applied command.
	Index uint64 `json:"index"`
	// Nodes holds the registered nodes by ID.
	Nodes map[ids.NodeID]*Node `json:"nodes"`
	// Topics holds the topics by name.
	Topics map[string]*Topic `json:"topics"`
	// NextShardID is the next ShardID to allocate.
	NextShardID ids.ShardID `json:"next_shard_id"`
	// NextReplicaID is the next ReplicaID to allocate.
	NextReplicaID ids.ReplicaID `json:"next_replica_id"`
	// NextNodeNum is the next readable node number to allocate.
	NextNodeNum ids.NodeNum `json:"next_node_num"`
	// Moves holds the replica moves in progress, at most one per shard.
	Moves map[ids.ShardID]*Move `json:"moves,omitempty"`
	// Removed holds the nodes removed for good (node remove) with their
	// numbers: such a node may not register again.
	Removed map[ids.NodeID]ids.NodeNum `json:"removed,omitempty"`
}

// NewState returns the empty state: no nodes or topics, NextShardID at
// FirstDataShardID and NextReplicaID at 1.
func NewState() *State {
	return &State{
		Nodes:         map[ids.NodeID]*Node{},
		Topics:        map[string]*Topic{},
		NextShardID:   FirstDataShardID,
		NextReplicaID: 1,
		NextNodeNum:   1,
		Moves:         map[ids.ShardID]*Move{},
		Removed:       map[ids.NodeID]ids.NodeNum{},
	}
}

// Clone returns a deep copy of the state.
func (s *State) Clone() *State {
	c := *s
	c.Nodes = make(map[ids.NodeID]*Node, len(s.Nodes))
	for id, n := range s.Nodes {
		nc := *n
		c.Nodes[id] = &nc
	}
	c.Topics = make(map[string]*Topic, len(s.Topics))
	for name, t := range s.Topics {
		c.Topics[name] = t.Clone()
	}
	c.Moves = make(map[ids.ShardID]*Move, len(s.Moves))
	for id, m := range s.Moves {
		mc := *m
		c.Moves[id] = &mc
	}
	c.Removed = maps.Clone(s.Removed)
	if c.Removed == nil {
		c.Removed = map[ids.NodeID]ids.NodeNum{}
	}
	return &c
}

// SortedTopics returns the topics in ascending name order. The pointers are
// the state's own.
func (s *State) SortedTopics() []*Topic {
	out := make([]*Topic, 0, len(s.Topics))
	for _, name := range slices.Sorted(maps.Keys(s.Topics)) {
		out = append(out, s.Topics[name])
	}
	return out
}

// SortedNodes returns the nodes in ascending ID order. The pointers are the
// state's own.
func (s *State) SortedNodes() []*Node {
	out := slices.Collect(maps.Values(s.Nodes))
	slices.SortFunc(out, func(a, b *Node) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ShardsOnNode returns the shard replicas placed on node id, ordered by topic
// name and shard index. The shards are copies.
func (s *State) ShardsOnNode(id ids.NodeID) []ShardRef {
	var out []ShardRef
	for _, t := range s.SortedTopics() {
		for _, sh := range t.ShardList {
			for _, r := range sh.Replicas {
				if r.NodeID == id {
					out = append(out, ShardRef{Topic: t.Name, Shard: sh.Clone(), ReplicaID: r.ReplicaID})
					break
				}
			}
		}
	}
	return out
}

// ShardByID finds the shard with dragonboat ShardID shardID. The topic pointer
// is the state's own; the shard is a copy. It scans every topic.
func (s *State) ShardByID(shardID ids.ShardID) (topic *Topic, sh Shard, ok bool) {
	for _, t := range s.Topics {
		for _, cand := range t.ShardList {
			if cand.ShardID == shardID {
				return t, cand.Clone(), true
			}
		}
	}
	return nil, Shard{}, false
}
