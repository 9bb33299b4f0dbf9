// Package meta is the cluster's metadata: the state held by the meta Raft group
// (dragonboat shard ShardID) and the commands that change it.
//
// The State records registered nodes, topics with their shards and replica
// placement, and the counters that allocate dragonboat ShardIDs and
// ReplicaIDs. IDs are never reused: dragonboat rejects a removed ReplicaID, and
// a shard's on-disk key range is keyed by its ShardID.
//
// Nodes propose Commands (JSON with an "op" field, see Encode). The state
// machine applies them with State.Apply, which is pure and deterministic: it
// reads nothing but the state, the command and the Raft index, so every
// replica of the meta group reaches the same state. Anything the apply needs
// from the outside world (which nodes are live, the configured limits, the
// wanted number of meta voters that decides a joining node's vote) travels
// inside the command, chosen by the proposer. A command that fails validation
// leaves the state unchanged except for State.Index and reports its error in
// the Raft result: read it back with ResultError, ResultTopic or ResultNode.
//
// NewStateMachine wraps State as a dragonboat regular (in-memory) state
// machine. Lookup with any query returns a deep copy of the State that the
// caller may keep; snapshots are the State's JSON.
package meta
