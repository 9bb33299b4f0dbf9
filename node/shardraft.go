package node

import (
	"context"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"

	"shardlog/ids"
	"shardlog/meta"
	"shardlog/shard"
)

// shardRaft is shard.Raft over the node's NodeHost: the data shards' Raft groups.
type shardRaft struct{ n *Node }

// Propose queues cmd with dragonboat's asynchronous Propose, which keeps the
// order of the calls.
func (r shardRaft) Propose(shardID ids.ShardID, cmd []byte, timeout time.Duration) (shard.Proposal, error) {
	rs, err := r.n.nh.Propose(r.n.nh.GetNoOPSession(uint64(shardID)), cmd, timeout)
	if err != nil {
		return nil, err
	}
	return proposal{rs}, nil
}

// ReadIndex is a linearizable read of nothing: dragonboat's SyncRead returns
// once the local replica applied up to the commit point.
func (r shardRaft) ReadIndex(ctx context.Context, shardID ids.ShardID) error {
	_, err := r.n.nh.SyncRead(ctx, uint64(shardID), nil)
	return err
}

// IsLeader reports whether this node's replica leads the shard.
func (r shardRaft) IsLeader(shardID ids.ShardID) bool { return r.n.isLocalLeader(shardID) }

// proposal is a dragonboat proposal in flight.
type proposal struct{ rs *dragonboat.RequestState }

// Wait waits for the proposal's outcome (applied, or why not), as dragonboat's
// SyncPropose does, and releases the request state.
func (p proposal) Wait(ctx context.Context) (statemachine.Result, error) {
	defer p.rs.Release()
	select {
	case r := <-p.rs.AppliedC():
		switch {
		case r.Completed():
			return r.GetResult(), nil
		case r.Rejected():
			return statemachine.Result{}, dragonboat.ErrRejected
		case r.Timeout():
			return statemachine.Result{}, dragonboat.ErrTimeout
		case r.Terminated():
			return statemachine.Result{}, dragonboat.ErrShardClosed
		case r.Dropped():
			return statemachine.Result{}, dragonboat.ErrShardNotReady
		case r.Aborted():
			return statemachine.Result{}, dragonboat.ErrAborted
		}
		return statemachine.Result{}, fmt.Errorf("node: unknown proposal outcome %v", r)
	case <-ctx.Done():
		// Unknown outcome: the entry may still commit. Dedupe makes a retry safe.
		return statemachine.Result{}, dragonboat.ErrTimeout
	}
}

// leaderOf returns the replica that leads shardID as this node's NodeHost knows
// it; ok is false when it knows none.
func (n *Node) leaderOf(shardID ids.ShardID) (leader ids.ReplicaID, ok bool) {
	id, _, valid, err := n.nh.GetLeaderID(uint64(shardID))
	return ids.ReplicaID(id), err == nil && valid
}

// metaLeader returns the node that leads the meta group as this node knows it: a
// node's replica ID in the meta group is its NodeID, unless it rejoined with a new
// one (meta.Node.MetaReplica).
func (n *Node) metaLeader() (ids.NodeID, bool) {
	rid, ok := n.leaderOf(meta.ShardID)
	if !ok {
		return 0, false
	}
	if v := n.view.Load(); v != nil {
		if nd, found := v.NodeByMetaReplica(uint64(rid)); found {
			return nd.ID, true
		}
	}
	return ids.NodeID(rid), true
}
