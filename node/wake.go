package node

import (
	"context"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"

	"shardlog/gossip"
	"shardlog/ids"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

// Waking quiesced shards when a peer fails.
//
// A quiesced dragonboat replica neither heartbeats nor counts towards an election: its
// followers only leave quiesce when a message reaches them. When the leader of an idle
// shard dies (or hangs, or is cut off), no message ever comes, so without help the
// surviving majority never elects a new leader, and a proposal on a follower is
// forwarded to the dead leader and lost. Gossip notices the failure within about a
// probe interval. The wake loop then asks the node itself (one ShardStatus call, bounded
// by --down-probe-timeout): gossip's probes are UDP with a 500 ms timeout, and on a loaded
// machine they flap, so a node is taken for down only when it fails that call too. It
// then pokes every local replica whose leader sits on a down node (or that leads without
// a live majority) with a ReadIndex request. That takes the replica out of quiesce; its
// election clock kept running while it was quiesced, so it campaigns at its next tick
// and the other survivors, woken by its vote request, elect a new leader.
//
// The down set also steers requests: routing skips a leader on a down node, and calls
// already forwarded to it are cut short.

// wakeLoop runs a pass at every gossip report of a peer that is no longer ALIVE, and
// every WakeInterval, which also notices a node coming back. It is the only user of
// the gossip event channel and the only writer of n.down.
func (n *Node) wakeLoop() {
	defer n.wg.Done()
	if n.cfg.WakeInterval < 0 {
		return
	}
	tick := time.NewTicker(n.cfg.WakeInterval)
	defer tick.Stop()
	events := n.gossip.Events()
	woken := map[ids.ShardID]time.Time{}
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
			n.wakePass(time.Now(), woken)
		case now := <-tick.C:
			n.wakePass(now, woken)
		}
	}
}

// wakePass refreshes the set of down nodes, cuts short the calls forwarded to nodes
// newly down, and wakes the replicas that need a new leader.
func (n *Node) wakePass(now time.Time, woken map[ids.ShardID]time.Time) {
	v := n.view.Load()
	if v == nil {
		return
	}
	old := n.downNodes()
	down := n.probeSuspects(v)
	n.down.Store(&down)
	for id := range down {
		if !old[id] {
			n.log.Info("peer down (gossip and a direct call agree); waking the shards it led", "peer", uint64(id), "state", n.nodeState(id))
			n.abortPeer(id)
		}
	}
	for id := range old {
		if !down[id] {
			n.log.Info("peer answers again", "peer", uint64(id), "state", n.nodeState(id))
		}
	}
	if len(down) > 0 {
		n.wakeOrphans(v, now, woken)
	}
	for id, at := range woken {
		if now.Sub(at) >= n.wakeGap() {
			delete(woken, id)
		}
	}
}

// probeSuspects returns the registered nodes that gossip does not hold ALIVE and that
// did not answer a direct call either, calling them in parallel.
func (n *Node) probeSuspects(v *meta.State) map[ids.NodeID]bool {
	down := map[ids.NodeID]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range v.SortedNodes() {
		if st := n.nodeState(nd.ID); st == gossip.StateAlive || st == "" {
			continue
		}
		wg.Go(func() {
			ok := n.answers(nd.ClientAddr)
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				down[nd.ID] = true
			}
		})
	}
	wg.Wait()
	return down
}

// answers reports whether the node at addr answers a ShardStatus call in time.
func (n *Node) answers(addr string) bool {
	conn, err := n.dial(addr)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DownProbeTimeout)
	defer cancel()
	_, err = pb.NewClusterClient(conn).ShardStatus(ctx, &pb.ShardStatusRequest{})
	return err == nil
}

// downNodes is the current down set (read-only).
func (n *Node) downNodes() map[ids.NodeID]bool {
	if d := n.down.Load(); d != nil {
		return *d
	}
	return nil
}

// wakeOrphans wakes each local replica that needs a new leader, at most once per
// wakeGap per shard (woken holds the last wake of each shard; wakeLoop owns it).
func (n *Node) wakeOrphans(v *meta.State, now time.Time, woken map[ids.ShardID]time.Time) {
	gap := n.wakeGap()
	var pending []*dragonboat.RequestState
	for _, ref := range v.ShardsOnNode(n.id.NodeID) {
		id := ref.Shard.ShardID
		rid, ok := n.hostedReplica(id)
		if !ok || !n.orphaned(ref.Shard, rid) || now.Sub(woken[id]) < gap {
			continue
		}
		rs, err := n.nh.ReadIndex(uint64(id), n.cfg.ProposalTimeout)
		if err != nil {
			continue
		}
		woken[id] = now
		pending = append(pending, rs)
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

// orphaned reports whether this node's replica rid of sh needs waking: its leader's
// node is down, or this replica leads without a live majority (woken, it runs the
// quorum check and steps down). A replica with no known leader is campaigning, not
// quiesced: waking it would only add elections.
func (n *Node) orphaned(sh meta.Shard, rid ids.ReplicaID) bool {
	leader, ok := n.leaderOf(sh.ShardID)
	if !ok {
		return false
	}
	if leader == rid {
		alive := 0
		for _, r := range sh.Replicas {
			if n.peerAlive(r.NodeID) {
				alive++
			}
		}
		return 2*alive <= len(sh.Replicas)
	}
	members := sh.Replicas
	if v := n.view.Load(); v != nil {
		members = v.Members(sh) // the leader may be a move's new replica
	}
	for _, r := range members {
		if r.ReplicaID == leader {
			return !n.peerAlive(r.NodeID)
		}
	}
	return false
}

// peerAlive reports whether node id is not in the down set: gossip holds it ALIVE, or
// it answered a direct call at the last wake pass.
func (n *Node) peerAlive(id ids.NodeID) bool {
	return !n.downNodes()[id]
}

// peerAnswering reports whether node id can be expected to answer soon: gossip holds it
// ALIVE (or has not heard of it yet) and it is not down. Status calls skip a node that
// is not, rather than wait for it: a false suspicion only leaves out its answer.
func (n *Node) peerAnswering(id ids.NodeID) bool {
	st := n.nodeState(id)
	return (st == gossip.StateAlive || st == "") && n.peerAlive(id)
}

// wakeGap is the shortest time between two wakes of one shard: two election
// timeouts, so a woken shard has time to elect before it is poked again.
func (n *Node) wakeGap() time.Duration {
	return 2 * time.Duration(n.cfg.ElectionRTT*n.cfg.RTTMillisecond) * time.Millisecond
}
