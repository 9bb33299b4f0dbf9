package placement

import (
	"shardlog/ids"
	"time"
)

// LeaderView is what PlanLeaderTransfers decides from: a snapshot taken by
// one node of the shards it leads and of the liveness of the other nodes.
// The caller reads the clock; the view holds durations only.
type LeaderView struct {
	// Self is the ID of the node that leads the shards in Led.
	Self ids.NodeID
	// Led lists the shards whose Raft leader is Self's replica, in the order
	// the transfers are to be requested.
	Led []LedShard
	// Nodes holds the liveness of nodes by ID; a node missing from it counts
	// as not alive.
	Nodes map[ids.NodeID]Liveness
	// Grace is how long a preferred node must have been alive before it is
	// handed leadership, so a node that just came back can catch up first.
	Grace time.Duration
}

// LedShard is one shard led by LeaderView.Self.
type LedShard struct {
	// ShardID is the shard's Raft group ID.
	ShardID ids.ShardID
	// Replicas lists the shard's replicas; Replicas[0] is the preferred
	// leader, as PlaceShards returns it.
	Replicas []Replica
}

// Replica is one replica of a shard: its Raft replica ID and its node.
type Replica struct {
	// ReplicaID is the replica's ID in the shard's Raft group.
	ReplicaID ids.ReplicaID
	// NodeID is the node hosting the replica.
	NodeID ids.NodeID
}

// Liveness is one node's health as the planning node sees it.
type Liveness struct {
	// Alive is true when membership reports the node alive (not suspect,
	// dead or left).
	Alive bool
	// AliveFor is how long the node has been alive; meaningless unless Alive.
	AliveFor time.Duration
}

// Transfer asks for the leadership of one shard to move to a replica.
type Transfer struct {
	// ShardID is the shard whose leader is to change.
	ShardID ids.ShardID
	// ToReplica is the replica to take over the leadership.
	ToReplica ids.ReplicaID
	// ToNode is the node hosting ToReplica.
	ToNode ids.NodeID
}

// PlanLeaderTransfers returns the leader transfers that move each shard in
// view.Led to its preferred replica, in the order of view.Led. A shard is
// left alone when it has a single replica, when its preferred replica is on
// view.Self (it already leads), or when the preferred node is not alive or
// has been alive for less than view.Grace.
//
// NB: Raft elects whichever replica times out first, which left one node
// leading 6 of 8 shards and another none; PlaceShards spreads the preferred
// leaders evenly, so moving every shard back to its preferred replica
// balances the leaders.
func PlanLeaderTransfers(view LeaderView) []Transfer {
	var out []Transfer
	for _, sh := range view.Led {
		if len(sh.Replicas) < 2 {
			continue
		}
		pref := sh.Replicas[0]
		if pref.NodeID == view.Self {
			continue
		}
		l, ok := view.Nodes[pref.NodeID]
		if !ok || !l.Alive || l.AliveFor < view.Grace {
			continue
		}
		out = append(out, Transfer{ShardID: sh.ShardID, ToReplica: pref.ReplicaID, ToNode: pref.NodeID})
	}
	return out
}
