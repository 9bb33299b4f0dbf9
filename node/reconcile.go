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

// wanted is a replica the meta view wants running on this node.
type wanted struct {
	topic     string
	shard     meta.Shard // its replicas are the initial members of a new shard
	replicaID ids.ReplicaID
	// join: the replica was added to a running shard by a move, so a first start
	// joins it (dragonboat's join) instead of bootstrapping with the members.
	join bool
	// nonVoting: the replica joined as non-voting (a move's new replica, promoted
	// or not): it always starts as one, and dragonboat promotes it from its log or
	// snapshot. Starting it as a voter would panic on the replay of its
	// AddNonVoting.
	nonVoting bool
}

// wantedHere lists the replicas the view places on this node: the shards' own,
// and the new replicas of moves that target it once they are Raft members.
func (n *Node) wantedHere(v *meta.State) map[ids.ShardID]wanted {
	desired := map[ids.ShardID]wanted{}
	for _, ref := range v.ShardsOnNode(n.id.NodeID) {
		joined := false
		for _, r := range ref.Shard.Replicas {
			joined = joined || (r.ReplicaID == ref.ReplicaID && r.Joined)
		}
		desired[ref.Shard.ShardID] = wanted{topic: ref.Topic, shard: ref.Shard, replicaID: ref.ReplicaID, join: joined, nonVoting: joined}
	}
	for _, m := range v.MoveTargets(n.id.NodeID) {
		_, sh, ok := v.ShardByID(m.ShardID)
		if !ok {
			continue
		}
		desired[m.ShardID] = wanted{topic: m.Topic, shard: sh, replicaID: m.To.ReplicaID, join: true, nonVoting: true}
	}
	return desired
}

// reconcile makes the replicas running on this node match the meta view: start the
// ones assigned here, stop and delete the ones no longer here (topic deleted, replica
// moved away). It runs only on metaLoop; n.runMu is held only around map accesses,
// never across dragonboat calls, so requests for other shards are not held up by a
// slow start or removal.
func (n *Node) reconcile() {
	v := n.view.Load()
	if v == nil {
		return
	}
	desired := n.wantedHere(v)
	for _, id := range slices.Sorted(maps.Keys(desired)) {
		w := desired[id]
		if rid, ok := n.hostedReplica(id); ok && rid == w.replicaID {
			continue
		}
		n.startReplica(v, id, w)
	}

	n.runMu.RLock()
	stale := map[ids.ShardID]ids.ReplicaID{}
	for id, rid := range n.running {
		if w, ok := desired[id]; !ok || w.replicaID != rid {
			stale[id] = rid
		}
	}
	n.runMu.RUnlock()
	for id, rid := range stale {
		// Forget it first: requests for a removed replica now answer "not hosted".
		n.runMu.Lock()
		if n.running[id] == rid {
			delete(n.running, id)
		}
		n.runMu.Unlock()
		n.removeReplica(id, rid)
	}
	n.removeLeftovers(v, desired)
}

// startReplica starts one wanted replica. A replica this node opened before (the
// segment store holds its state key, written when its state machine first opened)
// restarts from dragonboat's bootstrap record, without members; a first start
// bootstraps a new shard with its replicas as members, or joins a running one (a
// move's new replica). NB: dragonboat panics when a restart finds no bootstrap
// record, so the choice is made before the call, not from its error.
func (n *Node) startReplica(v *meta.State, id ids.ShardID, w wanted) {
	st, opened, err := n.store.State(id)
	if err != nil {
		n.log.Error("read shard state", "shard", id, "err", err)
		return
	}
	if opened && st.ReplicaID != w.replicaID {
		// Data of an earlier replica of the shard on this node (moved away, then
		// back): its Raft log goes too, and the new replica starts empty.
		n.removeReplica(id, st.ReplicaID)
		opened = false
	}
	cfg := n.shardReplicaConfig(id, w.replicaID)
	cfg.IsNonVoting = w.nonVoting
	factory := shard.NewFactory(n.store, n.hub, n.log)
	switch {
	case opened:
		err = n.nh.StartOnDiskReplica(nil, false, factory, cfg)
	case w.join:
		err = n.nh.StartOnDiskReplica(nil, true, factory, cfg)
	default:
		members := map[uint64]dragonboat.Target{}
		for _, r := range w.shard.Replicas {
			if nd, ok := v.Nodes[r.NodeID]; ok {
				members[uint64(r.ReplicaID)] = nd.RaftAddr
			}
		}
		err = n.nh.StartOnDiskReplica(members, false, factory, cfg)
		if errors.Is(err, dragonboat.ErrInvalidShardSettings) {
			// Bootstrapped before with other members (a crash before its state
			// machine first opened, and a move since): the record holds them.
			err = n.nh.StartOnDiskReplica(nil, false, factory, cfg)
		}
	}
	if err != nil && !errors.Is(err, dragonboat.ErrShardAlreadyExist) {
		n.log.Error("start shard replica", "topic", w.topic, "shard", id, "replica", w.replicaID, "err", err)
		return
	}
	n.runMu.Lock()
	n.running[id] = w.replicaID
	n.runMu.Unlock()
	n.log.Debug("started shard replica", "topic", w.topic, "shard", id, "replica", w.replicaID, "join", w.join, "non_voting", w.nonVoting)
}

// removeLeftovers deletes data on disk of replicas the view says are retired (their
// topic was deleted or they moved away while this node was down), whenever the view
// moved on, at most every leftoverInterval. A view that lags cannot retire a replica
// it has not heard of (meta.State.ReplicaRetired), so nothing live is deleted.
func (n *Node) removeLeftovers(v *meta.State, desired map[ids.ShardID]wanted) {
	if v.Index == n.cleanedIndex || time.Since(n.cleanedAt) < leftoverInterval {
		return
	}
	n.cleanedIndex, n.cleanedAt = v.Index, time.Now()
	local, err := n.store.Shards()
	if err != nil {
		n.log.Error("list local shards", "err", err)
		return
	}
	for _, id := range local {
		if _, ok := desired[id]; ok {
			continue
		}
		if _, ok := n.hostedReplica(id); ok {
			continue
		}
		st, ok, err := n.store.State(id)
		if err != nil || !ok {
			continue
		}
		if v.ReplicaRetired(id, st.ReplicaID) {
			n.removeReplica(id, st.ReplicaID)
		}
	}
}

// leftoverInterval spaces the scans for retired replicas' data.
const leftoverInterval = 5 * time.Second

// removeReplica stops a replica that is no longer wanted here (its shard was deleted
// or it moved away) and frees its Raft log and segment data.
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
			n.log.Debug("leader transfer not started", "shard", tr.ShardID, "to", v.Num(tr.ToNode), "err", err)
			continue
		}
		n.log.Debug("leader transfer to preferred replica", "topic", topics[tr.ShardID], "shard", tr.ShardID, "to", v.Num(tr.ToNode))
	}
}
