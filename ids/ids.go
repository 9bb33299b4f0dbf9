// Package ids names the numbers that cross shardlog's packages: nodes, shards, replicas
// and positions in a shard's log. Each is its own type, so that a shard ID cannot be
// passed where an offset or a replica ID is expected; conversions to and from uint64
// happen only at the edges (dragonboat's API, the wire format, storage keys).
//
// The package imports nothing: segment, shard, meta, placement, gossip and node all
// depend on it.
package ids

// NodeID identifies a node: a random 64-bit number created on its first start and kept
// in its data directory. It is also the node's replica ID in the meta Raft group.
type NodeID uint64

// ShardID is a dragonboat shard ID: one Raft group. The meta group is shard 1; the meta
// group allocates data shards' IDs from 16 up and never reuses one.
type ShardID uint64

// ReplicaID is a dragonboat replica ID within one shard's Raft group, allocated by the
// meta group and never reused (dragonboat refuses a removed replica's ID).
type ReplicaID uint64

// Offset is the position of a record in a shard's log: the first record is offset 0,
// and each record takes the next offset.
type Offset uint64

// NodeNum is a node's readable number: 1, 2, 3, ... in the order the meta group
// registered the nodes, never reused. Tables, logs and commands show it; NodeID stays
// the identity underneath (the meta group's replica ID, the key of every map).
type NodeNum uint32
