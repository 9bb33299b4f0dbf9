package node

import (
	"time"

	"github.com/lni/dragonboat/v4"

	"shardlog/gossip"
	"shardlog/meta"
)

// Waking quiesced shards when a peer fails.
//
// A quiesced dragonboat replica neither heartbeats nor counts towards an election: its
// followers only leave quiesce when a message reaches them. When the leader of an idle
// shard dies (or hangs, or is cut off), no message ever comes, so without help the
// surviving majority never elects a new leader, and a proposal on a follower is
// forwarded to the dead leader and lost. Gossip notices the failure within about a
// probe interval; the wake loop then pokes every local replica whose leader sits on a
// node that is not ALIVE (or that has no leader, or that leads without a live
// majority) with a ReadIndex request. That takes the replica out of quiesce; its
// election clock kept running while it was quiesced, so it campaigns at its next tick
// and the other survivors, woken by its vote request, elect a new leader.
//
// A ReadIndex to a leader that is in fact alive costs one heartbeat round and, since
// the leader answers before the follower's next tick, no election.

// wakeLoop runs wakeOrphans (and cuts short the calls forwarded to the peer) at every
// gossip report of a peer that is no longer ALIVE, and every WakeInterval to catch shards that lost their leader some other way. It is
// the only user of the gossip event channel.
func (n *Node) wakeLoop() {
	defer n.wg.Done()
	if n.cfg.WakeInterval < 0 {
		return
	}
	tick := time.NewTicker(n.cfg.WakeInterval)
	defer tick.Stop()
	events := n.gossip.Events()
	woken := map[uint64]time.Time{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.State == gossip.StateAlive {
				continue
			}
			n.log.Info("peer not alive; waking the shards it led", "peer", ev.NodeID, "state", ev.State)
			n.abortPeer(meta.NodeID(ev.NodeID))
			n.wakeOrphans(time.Now(), woken)
		case now := <-tick.C:
			n.wakeOrphans(now, woken)
		}
	}
}

// wakeOrphans wakes each local replica that needs a new leader, at most once per
// wakeGap per shard (woken holds the last wake of each shard; wakeLoop owns it).
func (n *Node) wakeOrphans(now time.Time, woken map[uint64]time.Time) {
	v := n.view.Load()
	if v == nil {
		return
	}
	gap := n.wakeGap()
	var pending []*dragonboat.RequestState
	for _, ref := range v.ShardsOnNode(meta.NodeID(n.id.NodeID)) {
		id := ref.Shard.ShardID
		rid, ok := n.hostedReplica(id)
		if !ok || !n.orphaned(ref.Shard, rid) || now.Sub(woken[id]) < gap {
			continue
		}
		rs, err := n.nh.ReadIndex(id, n.cfg.ProposalTimeout)
		if err != nil {
			continue
		}
		woken[id] = now
		pending = append(pending, rs)
	}
	for id, at := range woken {
		if now.Sub(at) >= gap {
			delete(woken, id)
		}
	}
	if len(pending) == 0 {
		return
	}
	n.log.Debug("woke shards without a live leader", "shards", len(pending))
	// The answers do not matter (a read to a dead leader times out); only release them.
	go func() {
		for _, rs := range pending {
			<-rs.ResultC()
			rs.Release()
		}
	}()
}

// orphaned reports whether this node's replica rid of sh needs waking: the shard has no
// known leader, its leader's node is not ALIVE, or this replica leads without a live
// majority (woken, it runs the quorum check and steps down).
func (n *Node) orphaned(sh meta.Shard, rid uint64) bool {
	leader, _, valid, err := n.nh.GetLeaderID(sh.ShardID)
	switch {
	case err != nil:
		return false
	case !valid:
		return true
	case leader == rid:
		alive := 0
		for _, r := range sh.Replicas {
			if n.peerAlive(r.NodeID) {
				alive++
			}
		}
		return 2*alive <= len(sh.Replicas)
	}
	for _, r := range sh.Replicas {
		if r.ReplicaID == leader {
			return !n.peerAlive(r.NodeID)
		}
	}
	return true // led by a replica the view does not know: let it re-elect
}

// peerAlive reports whether gossip holds node id ALIVE. This node is alive; a node
// gossip has not heard of yet (just after a restart) is not taken for dead.
func (n *Node) peerAlive(id meta.NodeID) bool {
	st := n.nodeState(id)
	return st == gossip.StateAlive || st == ""
}

// wakeGap is the shortest time between two wakes of one shard: two election
// timeouts, so a woken shard has time to elect before it is poked again.
func (n *Node) wakeGap() time.Duration {
	return 2 * time.Duration(n.cfg.ElectionRTT*n.cfg.RTTMillisecond) * time.Millisecond
}
