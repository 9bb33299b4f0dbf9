package node

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"

	"shardlog/gossip"
	"shardlog/ids"
	"shardlog/meta"
	"shardlog/placement"
	"shardlog/shard"
)

func (n *Node) shardReplicaConfig(shardID ids.ShardID, replicaID ids.ReplicaID) config.Config {
	return config.Config{
		ShardID:            uint64(shardID),
		ReplicaID:          uint64(replicaID),
		ElectionRTT:        n.cfg.ElectionRTT,
		HeartbeatRTT:       n.cfg.HeartbeatRTT,
		CheckQuorum:        true,
		PreVote:            true,
		Quiesce:            n.cfg.Quiesce,
		SnapshotEntries:    n.cfg.SnapshotEntries,
		CompactionOverhead: n.cfg.CompactionOverhead,
		// Bytes of unapplied entries held in memory; above it proposals get
		// ErrSystemBusy (back-pressure), and one entry may not exceed it.
		MaxInMemLogSize: uint64(max(256<<20, 4*n.cfg.MaxBatchBytes)),
	}
}

// reconcile makes the replicas running on this node match the meta view: start the
// ones assigned here, stop and delete the ones whose topic is gone. It runs only on
// metaLoop; n.runMu is held only around map accesses, never across dragonboat calls,
// so requests for other shards are not held up by a slow start or removal.
func (n *Node) reconcile() {
	v := n.view.Load()
	if v == nil {
		return
	}
	desired := map[ids.ShardID]meta.ShardRef{}
	for _, ref := range v.ShardsOnNode(n.id.NodeID) {
		desired[ref.Shard.ShardID] = ref
	}
	for _, id := range slices.Sorted(maps.Keys(desired)) {
		if _, ok := n.hostedReplica(id); ok {
			continue
		}
		ref := desired[id]
		members := map[uint64]dragonboat.Target{}
		for _, r := range ref.Shard.Replicas {
			nd, ok := v.Nodes[r.NodeID]
			if !ok {
				continue
			}
			members[uint64(r.ReplicaID)] = nd.RaftAddr
		}
		err := n.nh.StartOnDiskReplica(members, false, shard.NewFactory(n.store, n.hub, n.log), n.shardReplicaConfig(id, ref.ReplicaID))
		if err != nil && !errors.Is(err, dragonboat.ErrShardAlreadyExist) {
			n.log.Error("start shard replica", "topic", ref.Topic, "shard", id, "replica", ref.ReplicaID, "err", err)
			continue
		}
		n.runMu.Lock()
		n.running[id] = ref.ReplicaID
		n.runMu.Unlock()
		n.log.Debug("started shard replica", "topic", ref.Topic, "shard", id, "replica", ref.ReplicaID)
	}

	n.runMu.RLock()
	stale := map[ids.ShardID]ids.ReplicaID{}
	for id, rid := range n.running {
		if _, ok := desired[id]; !ok {
			stale[id] = rid
		}
	}
	n.runMu.RUnlock()
	for id, rid := range stale {
		// Forget it first: requests for a deleted shard now answer "not hosted".
		n.runMu.Lock()
		delete(n.running, id)
		n.runMu.Unlock()
		n.removeReplica(id, rid)
	}

	// Data left on disk for shards deleted while this node was down. A shard ID below
	// NextShardID that the view does not place here was deleted for sure; one at or
	// above it belongs to a view newer than ours, so it is left alone.
	if !n.cleaned {
		n.cleaned = true
		local, err := n.store.Shards()
		if err != nil {
			n.log.Error("list local shards", "err", err)
			return
		}
		for _, id := range local {
			if _, ok := desired[id]; ok || id >= v.NextShardID {
				continue
			}
			st, _, err := n.store.State(id)
			if err != nil {
				n.log.Error("read shard state", "shard", id, "err", err)
				continue
			}
			n.removeReplica(id, st.ReplicaID)
		}
	}
}

// removeReplica stops a replica whose shard was deleted and frees its Raft log and
// segment data.
func (n *Node) removeReplica(shardID ids.ShardID, replicaID ids.ReplicaID) {
	if err := n.nh.StopReplica(uint64(shardID), uint64(replicaID)); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		n.log.Error("stop shard replica", "shard", shardID, "err", err)
		return
	}
	if replicaID != 0 {
		// The engine unloads a stopped replica asynchronously; its state machine must
		// be gone before the segment data is deleted under it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := n.nh.RemoveData(uint64(shardID), uint64(replicaID))
			if errors.Is(err, dragonboat.ErrShardNotStopped) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if err != nil {
				n.log.Error("remove Raft data; keeping segment data", "shard", shardID, "replica", replicaID, "err", err)
				return
			}
			break
		}
	}
	if err := n.store.DeleteShard(shardID); err != nil {
		n.log.Error("delete shard data", "shard", shardID, "err", err)
	}
	n.hub.Remove(shardID)
	n.leaderHints.Delete(shardID)
	n.log.Info("removed shard replica", "shard", shardID, "replica", replicaID)
}

// hostedReplica returns the ReplicaID of this node's running replica of shardID.
func (n *Node) hostedReplica(shardID ids.ShardID) (ids.ReplicaID, bool) {
	n.runMu.RLock()
	defer n.runMu.RUnlock()
	rid, ok := n.running[shardID]
	return rid, ok
}

// every runs fn(now) every interval until the node closes; a negative interval
// disables it. It is the body of the node's periodic loops.
func (n *Node) every(interval time.Duration, fn func(now time.Time)) {
	defer n.wg.Done()
	if interval < 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-tick.C:
			fn(now)
		}
	}
}

// applyRetention lets each shard this node leads drop batches past its topic's
// retention: shard.Replicas.Retain proposes the truncate if this replica leads.
func (n *Node) applyRetention(now time.Time) {
	v := n.view.Load()
	if v == nil {
		return
	}
	for _, ref := range v.ShardsOnNode(n.id.NodeID) {
		t, _, ok := v.ShardByID(ref.Shard.ShardID)
		if !ok || (t.RetentionMs == 0 && t.RetentionBytes == 0) {
			continue
		}
		var olderThan int64
		if t.RetentionMs > 0 {
			olderThan = now.UnixMilli() - t.RetentionMs
		}
		before, dropped, err := n.data.Retain(n.ctx, ref.Shard.ShardID, olderThan, t.RetentionBytes)
		if err != nil {
			n.log.Warn("retention truncate failed", "topic", t.Name, "shard", ref.Shard.ShardID, "err", err)
			continue
		}
		if dropped {
			n.log.Info("retention dropped old batches", "topic", t.Name, "shard", ref.Shard.ShardID, "before", before)
		}
	}
}

// isLocalLeader reports whether this node's replica leads shardID.
func (n *Node) isLocalLeader(shardID ids.ShardID) bool {
	rid, ok := n.hostedReplica(shardID)
	if !ok {
		return false
	}
	leader, ok := n.leaderOf(shardID)
	return ok && leader == rid
}

// balanceLeaders hands leadership of each shard this node leads to the shard's
// preferred leader (its first replica, which placement spread evenly over nodes),
// once that node has been ALIVE for two intervals. It builds placement's view from
// the meta view, gossip and the clock, and requests the transfers
// placement.PlanLeaderTransfers plans.
func (n *Node) balanceLeaders(now time.Time) {
	v := n.view.Load()
	if v == nil || n.gossip == nil {
		return
	}
	view := placement.LeaderView{
		Self:  n.id.NodeID,
		Nodes: map[ids.NodeID]placement.Liveness{},
		Grace: 2 * n.cfg.LeaderBalanceInterval,
	}
	for _, m := range n.gossip.Members() {
		view.Nodes[m.NodeID] = placement.Liveness{Alive: m.State == gossip.StateAlive, AliveFor: now.Sub(m.Since)}
	}
	topics := map[ids.ShardID]string{}
	for _, ref := range v.ShardsOnNode(n.id.NodeID) {
		sh := ref.Shard
		if !n.isLocalLeader(sh.ShardID) {
			continue
		}
		led := placement.LedShard{ShardID: sh.ShardID, Replicas: make([]placement.Replica, len(sh.Replicas))}
		for i, r := range sh.Replicas {
			led.Replicas[i] = placement.Replica{ReplicaID: r.ReplicaID, NodeID: r.NodeID}
		}
		view.Led = append(view.Led, led)
		topics[sh.ShardID] = ref.Topic
	}
	for _, tr := range placement.PlanLeaderTransfers(view) {
		if err := n.nh.RequestLeaderTransfer(uint64(tr.ShardID), uint64(tr.ToReplica)); err != nil {
			n.log.Debug("leader transfer not started", "shard", tr.ShardID, "to", tr.ToNode, "err", err)
			continue
		}
		n.log.Debug("leader transfer to preferred replica", "topic", topics[tr.ShardID], "shard", tr.ShardID, "to", tr.ToNode)
	}
}
