// Package node assembles one shardlog server: the dragonboat NodeHost (Raft transport
// and log), the meta group replica, the shard replicas over one Pebble segment store,
// gossip, and the gRPC server with the Admin, Log and Cluster services.
//
// Start opens or creates the node's directory and then does one of three things:
//   - bootstraps a new cluster when the directory is new and there is no --join;
//   - joins through any member, which forwards Join to the meta leader;
//   - restarts from what dragonboat persisted.
//
// From then on metaLoop keeps a copy of the meta state (the "view") and reconciles the
// replicas this node runs against it.
//
// Requests may arrive at any node. route sends a shard request to the local leader
// replica, to the leader's node when a local replica knows it, or to a replica's node,
// which forwards once more. Retries run within the request deadline. Errors leave
// through one table (errors.go, toStatus).
//
// Node runs the goroutines listed in docs/threads.md. node/nodetest starts N nodes
// in-process on 127.0.0.1 with the same wiring, for tests in any package.
package node
