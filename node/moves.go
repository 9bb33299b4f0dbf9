package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"

	"shardlog/ids"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

// The replica moves meta records are carried out by the leader of each moving
// shard: moveLoop looks at the view every moveInterval and runs the next step of
// every move whose shard this node leads, at most one step per shard at a time.
// A step reads the shard's Raft membership first (linearizable), so a step that
// was taken but not recorded (the leader crashed in between, or the proposal's
// answer was lost) is recognised and only recorded, and a new leader picks the
// move up from what meta says.
const moveInterval = 250 * time.Millisecond

// catchUpSlack is how many applied entries the new replica may trail the
// leader by when it is promoted. Promotion is safe at any lag (Raft does not
// need the new voter to be current); a voter far behind only leaves the shard
// less tolerant of another failure until it catches up.
const catchUpSlack = 1000

// moveLoop starts the next step of each move led here.
func (n *Node) moveLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(moveInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		v := n.view.Load()
		if v == nil {
			continue
		}
		for _, m := range v.SortedMoves() {
			if !n.isLocalLeader(m.ShardID) {
				continue
			}
			if _, busy := n.moving.LoadOrStore(m.ShardID, true); busy {
				continue
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer n.moving.Delete(m.ShardID)
				if err := n.stepMove(v, m); err != nil && n.ctx.Err() == nil {
					n.log.Warn("move step failed; retrying", "topic", m.Topic, "shard", m.ShardID,
						"from", v.Num(m.From.NodeID), "to", v.Num(m.To.NodeID), "phase", m.Phase, "err", err)
				}
			}()
		}
	}
}

// moveFacts is what one step of a move knows: the shard's Raft membership as it
// concerns the move's two replicas, and the target node.
type moveFacts struct {
	toVotes, toLearns, toRemoved bool
	fromVotes, fromLearns        bool
	target                       *meta.Node
	targetGone                   bool
}

// stepMove takes the next step of move m, as the shard's leader.
func (n *Node) stepMove(v *meta.State, m meta.Move) error {
	ctx, cancel := context.WithTimeout(n.ctx, 3*n.cfg.ProposalTimeout)
	defer cancel()
	mctx, mcancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
	mem, err := n.nh.SyncGetShardMembership(mctx, uint64(m.ShardID))
	mcancel()
	if err != nil {
		return fmt.Errorf("read membership: %w", err)
	}
	to, from := uint64(m.To.ReplicaID), uint64(m.From.ReplicaID)
	var f moveFacts
	_, f.toVotes = mem.Nodes[to]
	_, f.toLearns = mem.NonVotings[to]
	_, f.toRemoved = mem.Removed[to]
	_, f.fromVotes = mem.Nodes[from]
	_, f.fromLearns = mem.NonVotings[from]
	var ok bool
	f.target, ok = v.Nodes[m.To.NodeID]
	f.targetGone = !ok || n.nodeGone(m.To.NodeID, time.Now())
	switch m.Phase {
	case meta.PhaseAdding:
		return n.stepAdding(ctx, v, m, f)
	case meta.PhaseCatchingUp:
		return n.stepCatchingUp(ctx, v, m, f)
	case meta.PhasePromoted:
		return n.stepPromoted(ctx, v, m, f)
	}
	return nil
}

// stepAdding adds the new replica as non-voting, or rolls back a move whose
// target is gone.
func (n *Node) stepAdding(ctx context.Context, v *meta.State, m meta.Move, f moveFacts) error {
	switch {
	case f.toVotes || f.toLearns:
		return n.advanceMove(ctx, v, m, meta.PhaseCatchingUp)
	case f.toRemoved || f.targetGone:
		return n.advanceMove(ctx, v, m, meta.PhaseAborted)
	}
	err := n.changeMembership(ctx, m.ShardID, func(ctx context.Context, ccid uint64) error {
		return n.nh.SyncRequestAddNonVoting(ctx, uint64(m.ShardID), uint64(m.To.ReplicaID), f.target.RaftAddr, ccid)
	})
	if err != nil {
		return fmt.Errorf("add non-voting replica %d: %w", m.To.ReplicaID, err)
	}
	return n.advanceMove(ctx, v, m, meta.PhaseCatchingUp)
}

// stepCatchingUp promotes the new replica once it has caught up, or takes it out
// again when its node is gone.
func (n *Node) stepCatchingUp(ctx context.Context, v *meta.State, m meta.Move, f moveFacts) error {
	to := uint64(m.To.ReplicaID)
	switch {
	case f.toVotes:
		return n.advanceMove(ctx, v, m, meta.PhasePromoted)
	case f.targetGone || f.toRemoved:
		if f.toLearns {
			if err := n.changeMembership(ctx, m.ShardID, func(ctx context.Context, ccid uint64) error {
				return n.nh.SyncRequestDeleteReplica(ctx, uint64(m.ShardID), to, ccid)
			}); err != nil {
				return fmt.Errorf("remove non-voting replica %d of a move that cannot finish: %w", to, err)
			}
		}
		return n.advanceMove(ctx, v, m, meta.PhaseAborted)
	}
	behind, err := n.replicaLag(ctx, f.target, m.ShardID)
	if err != nil {
		return err
	}
	if behind > catchUpSlack {
		return nil // the next pass looks again
	}
	if (f.fromVotes || f.fromLearns) && n.nodeGone(m.From.NodeID, time.Now()) {
		// NB: the old replica is gone for good, so take it out before the new one
		// votes. Promoting first would make four voters with one dead: every
		// commit, the removal included, would need all three live ones, the new
		// replica as well. Removing first leaves the two live voters the shard
		// already needed; after the promotion it tolerates a failure again.
		if err := n.changeMembership(ctx, m.ShardID, func(ctx context.Context, ccid uint64) error {
			return n.nh.SyncRequestDeleteReplica(ctx, uint64(m.ShardID), uint64(m.From.ReplicaID), ccid)
		}); err != nil {
			return fmt.Errorf("remove replica %d of a gone node before the promotion: %w", m.From.ReplicaID, err)
		}
		n.log.Info("move: removed the gone node's replica before the promotion", "topic", m.Topic, "shard", m.ShardID,
			"from", fmt.Sprintf("r%d@%d", m.From.ReplicaID, v.Num(m.From.NodeID)))
	}
	err = n.changeMembership(ctx, m.ShardID, func(ctx context.Context, ccid uint64) error {
		return n.nh.SyncRequestAddReplica(ctx, uint64(m.ShardID), to, f.target.RaftAddr, ccid)
	})
	if err != nil {
		return fmt.Errorf("promote replica %d: %w", to, err)
	}
	return n.advanceMove(ctx, v, m, meta.PhasePromoted)
}

// stepPromoted removes the old replica, after handing leadership over if it leads.
func (n *Node) stepPromoted(ctx context.Context, v *meta.State, m meta.Move, f moveFacts) error {
	if !f.fromVotes && !f.fromLearns {
		return n.advanceMove(ctx, v, m, meta.PhaseDone)
	}
	if rid, _ := n.hostedReplica(m.ShardID); rid == m.From.ReplicaID {
		// The leaving replica leads: hand over to the new one, whose node then
		// takes the last step. Removing the leader itself would leave the shard
		// leaderless for an election timeout.
		if err := n.nh.RequestLeaderTransfer(uint64(m.ShardID), uint64(m.To.ReplicaID)); err != nil {
			return fmt.Errorf("hand leadership to replica %d: %w", m.To.ReplicaID, err)
		}
		return nil
	}
	err := n.changeMembership(ctx, m.ShardID, func(ctx context.Context, ccid uint64) error {
		return n.nh.SyncRequestDeleteReplica(ctx, uint64(m.ShardID), uint64(m.From.ReplicaID), ccid)
	})
	if err != nil {
		return fmt.Errorf("remove replica %d: %w", m.From.ReplicaID, err)
	}
	return n.advanceMove(ctx, v, m, meta.PhaseDone)
}

// changeMembership runs one membership change with the shard's current
// ConfigChangeID (the replicas are started with OrderedConfigChange off, so
// dragonboat ignores it; it is read anyway so a stale change is refused if that
// ever changes).
func (n *Node) changeMembership(ctx context.Context, shardID ids.ShardID, change func(context.Context, uint64) error) error {
	mctx, cancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
	defer cancel()
	mem, err := n.nh.SyncGetShardMembership(mctx, uint64(shardID))
	if err != nil {
		return err
	}
	err = change(mctx, mem.ConfigChangeID)
	if errors.Is(err, dragonboat.ErrRejected) {
		return fmt.Errorf("%w (dragonboat refused the change: stale config change ID or a removed replica ID)", err)
	}
	return err
}

// advanceMove records that move m reached phase.
func (n *Node) advanceMove(ctx context.Context, v *meta.State, m meta.Move, phase meta.MovePhase) error {
	_, retried, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpAdvanceMove,
		AdvanceMove: &meta.AdvanceMove{ShardID: m.ShardID, ToReplica: m.To.ReplicaID, Phase: phase}})
	var me *meta.Error
	if err != nil && !(retried && errors.As(err, &me) && me.Code == meta.CodeNotFound) {
		return fmt.Errorf("record phase %s: %w", phase, err)
	}
	n.log.Info("move "+string(phase), "topic", m.Topic, "shard", m.ShardID, "reason", m.Reason,
		"from", fmt.Sprintf("r%d@%d", m.From.ReplicaID, v.Num(m.From.NodeID)),
		"to", fmt.Sprintf("r%d@%d", m.To.ReplicaID, v.Num(m.To.NodeID)))
	return nil
}

// replicaLag returns how many entries the target node's replica of shardID has
// applied fewer than this node's.
func (n *Node) replicaLag(ctx context.Context, target *meta.Node, shardID ids.ShardID) (uint64, error) {
	mine, ok, err := n.store.State(shardID)
	if err != nil || !ok {
		return 0, fmt.Errorf("read the leader's applied index: ok %v, %v", ok, err)
	}
	conn, err := n.dial(target.ClientAddr)
	if err != nil {
		return 0, err
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.DownProbeTimeout)
	defer cancel()
	resp, err := pb.NewClusterClient(conn).ShardStatus(sctx, &pb.ShardStatusRequest{ShardIds: []uint64{uint64(shardID)}})
	if err != nil {
		return 0, fmt.Errorf("ask node %d how far its replica got: %w", target.Num, err)
	}
	if len(resp.Shards) != 1 || !resp.Shards[0].Hosted {
		return mine.AppliedIndex + catchUpSlack + 1, nil // not started yet
	}
	if applied := resp.Shards[0].AppliedIndex; applied < mine.AppliedIndex {
		return mine.AppliedIndex - applied, nil
	}
	return 0, nil
}
