package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"shardlog/gossip"
	"shardlog/ids"
	"shardlog/meta"
	"shardlog/placement"
)

// The controller: on the node that leads the meta group, healLoop decides every
// HealInterval which replica moves to start (placement.PlanMoves over a snapshot
// of meta and gossip), which preferred leaders to change, and whether the meta
// group needs a voter replaced. It only decides and records; the leaders of the
// shards carry the moves out (moves.go). A new meta leader starts from what meta
// recorded: nothing lives only in the old leader's memory.

// downClock remembers since when this node has seen each registered node without
// a gossip row (a node that died before this node started never gets one), so
// such a node too can count as gone after DeadAfter.
type downClock struct {
	mu     sync.Mutex
	unseen map[ids.NodeID]time.Time
}

// nodeGone reports whether node id has been DEAD or LEFT (or unknown to gossip)
// for at least DeadAfter as this node sees it: its replicas are to be replaced.
// A partition shorter than DeadAfter never makes a node gone.
func (n *Node) nodeGone(id ids.NodeID, now time.Time) bool {
	if id == n.id.NodeID || n.gossip == nil {
		return false
	}
	m, ok := n.gossip.Member(id)
	n.unseen.mu.Lock()
	defer n.unseen.mu.Unlock()
	if ok {
		delete(n.unseen.unseen, id)
		return (m.State == gossip.StateDead || m.State == gossip.StateLeft) && now.Sub(m.Since) >= n.cfg.DeadAfter
	}
	since, seen := n.unseen.unseen[id]
	if !seen {
		n.unseen.unseen[id] = now
		return false
	}
	return now.Sub(since) >= n.cfg.DeadAfter
}

// healPass runs the controller once, if this node leads the meta group.
func (n *Node) healPass(now time.Time) {
	if leader, ok := n.metaLeader(); !ok || leader != n.id.NodeID {
		return
	}
	v := n.view.Load()
	if v == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	snap := n.healSnapshot(v, now)
	for _, pm := range placement.PlanMoves(snap) {
		c := meta.Command{Op: meta.OpStartMove, StartMove: &meta.StartMove{
			ShardID: pm.ShardID, From: pm.From, To: pm.To, Reason: string(pm.Reason)}}
		if _, _, err := n.proposeMeta(ctx, c); err != nil {
			n.log.Warn("could not start a move", "shard", pm.ShardID, "from", v.Num(pm.From), "to", v.Num(pm.To), "err", err)
			continue
		}
		n.log.Info("move started", "shard", pm.ShardID, "reason", pm.Reason, "from", v.Num(pm.From), "to", v.Num(pm.To))
	}
	if len(v.Moves) == 0 && snap.Balance {
		for _, pc := range placement.PlanPreferredLeaders(snap, maxPreferredChanges) {
			c := meta.Command{Op: meta.OpSetPreferredLeader, SetPreferredLeader: &meta.SetPreferredLeader{ShardID: pc.ShardID, Node: pc.Node}}
			if _, _, err := n.proposeMeta(ctx, c); err != nil {
				n.log.Warn("could not change a preferred leader", "shard", pc.ShardID, "err", err)
			}
		}
	}
	if err := n.healMeta(ctx, v, snap); err != nil {
		n.log.Warn("meta group repair step failed", "err", err)
	}
}

// maxPreferredChanges bounds the preferred-leader changes per pass: each one
// becomes a leader transfer within a LeaderBalanceInterval.
const maxPreferredChanges = 4

// healSnapshot builds placement's view of the cluster. Balance (replica moves and
// preferred leaders) is asked for only while the cluster is calm: every node ALIVE
// or gone for good. A node that is down for less than DeadAfter (killed and
// restarting, paused, cut off) keeps its place: balancing around it would move
// replicas and leaderships back and forth with every short failure.
func (n *Node) healSnapshot(v *meta.State, now time.Time) placement.Snapshot {
	snap := placement.Snapshot{MaxMoves: n.cfg.MaxConcurrentMoves - len(v.Moves), Balance: n.cfg.Balance}
	down := n.downNodes()
	for _, nd := range v.SortedNodes() {
		st := placement.NodeStatus{
			ID: nd.ID, Zone: nd.Zone, Draining: nd.Draining,
			Alive: n.nodeState(nd.ID) == gossip.StateAlive && !down[nd.ID],
			Gone:  n.nodeGone(nd.ID, now),
		}
		if !st.Alive && !st.Gone {
			snap.Balance = false
		}
		snap.Nodes = append(snap.Nodes, st)
	}
	for _, t := range v.SortedTopics() {
		for _, sh := range t.ShardList {
			ss := placement.ShardStatus{ShardID: sh.ShardID, Moving: v.Moves[sh.ShardID] != nil}
			for _, r := range sh.Replicas {
				ss.Replicas = append(ss.Replicas, r.NodeID)
			}
			snap.Shards = append(snap.Shards, ss)
		}
	}
	return snap
}

// healMeta keeps MetaVoters voters in the meta group while enough nodes live,
// spread over zones (placement.PlanMetaVoters): one change per pass, the Raft
// membership first, then the record in meta.
func (n *Node) healMeta(ctx context.Context, v *meta.State, snap placement.Snapshot) error {
	status := map[ids.NodeID]placement.NodeStatus{}
	for _, s := range snap.Nodes {
		status[s.ID] = s
	}
	var voters []placement.VoterStatus
	for _, nd := range v.SortedNodes() {
		s := status[nd.ID]
		usable := !s.Gone && !nd.Draining && (nd.MetaVoter || s.Alive)
		voters = append(voters, placement.VoterStatus{ID: nd.ID, Zone: nd.Zone, Voter: nd.MetaVoter, Usable: usable})
	}
	plan := placement.PlanMetaVoters(voters, n.cfg.MetaVoters)
	switch {
	case plan.Add != 0:
		nd := v.Nodes[plan.Add]
		if err := n.addMetaMember(ctx, nd.MetaReplicaID(), nd.RaftAddr, true); err != nil {
			return fmt.Errorf("promote node %d to meta voter: %w", nd.Num, err)
		}
		if _, _, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpSetMetaVoter, SetMetaVoter: &meta.SetMetaVoter{Node: nd.ID, Voter: true}}); err != nil {
			return err
		}
		n.log.Info("meta voter added", "voter", nd.Num, "zone", nd.Zone)
	case plan.Remove == n.id.NodeID:
		// The meta leader is draining: it hands over, and the next leader takes
		// it out.
		return n.handOverMeta(v, status)
	case plan.Remove != 0:
		nd := v.Nodes[plan.Remove]
		if err := n.removeMetaMember(ctx, nd.MetaReplicaID()); err != nil {
			return fmt.Errorf("remove meta voter %d: %w", nd.Num, err)
		}
		if _, _, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpSetMetaVoter, SetMetaVoter: &meta.SetMetaVoter{Node: nd.ID, Voter: false}}); err != nil {
			return err
		}
		n.log.Info("meta voter removed", "voter", nd.Num, "zone", nd.Zone)
	}
	return nil
}

// handOverMeta transfers the meta group's leadership to a usable voter.
func (n *Node) handOverMeta(v *meta.State, status map[ids.NodeID]placement.NodeStatus) error {
	for _, nd := range v.SortedNodes() {
		if nd.MetaVoter && nd.ID != n.id.NodeID && status[nd.ID].Alive && !nd.Draining {
			return n.nh.RequestLeaderTransfer(uint64(meta.ShardID), nd.MetaReplicaID())
		}
	}
	return nil
}

// removeMetaMember takes a meta replica (a node's MetaReplicaID) out of the meta
// Raft group; one already out is done.
func (n *Node) removeMetaMember(ctx context.Context, id uint64) error {
	return n.changeMembership(ctx, meta.ShardID, func(ctx context.Context, ccid uint64) error {
		mem, err := n.nh.SyncGetShardMembership(ctx, uint64(meta.ShardID))
		if err != nil {
			return err
		}
		_, votes := mem.Nodes[id]
		_, learns := mem.NonVotings[id]
		if !votes && !learns {
			return nil
		}
		return n.nh.SyncRequestDeleteReplica(ctx, uint64(meta.ShardID), id, ccid)
	})
}
