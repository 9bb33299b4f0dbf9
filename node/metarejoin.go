package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

// A meta voter that stays gone for --dead-after is taken out of the meta Raft group
// (healMeta), and dragonboat never lets a removed replica ID back. When such a node
// returns, its meta replica hears from nobody and its view of the cluster stops.
// checkMetaReplica notices (no meta leader for metaRejoinAfter) and calls Join again;
// the meta leader sees the node's meta replica in the group's Removed set, gives it a
// new meta replica ID (meta.NewMetaReplica) as a non-voter, and answers with it; the
// node then swaps its meta replica for a fresh one under the new ID, which catches up
// from the leader. A Join of a node whose meta replica is fine changes nothing, so a
// meta group that is only leaderless for a while (lost quorum) costs a failed call.

// metaCheckInterval is how often a node checks that its meta replica has a leader.
const metaCheckInterval = 2 * time.Second

// metaRejoinAfter is how long the meta replica may know no leader before the node
// asks to rejoin.
const metaRejoinAfter = 10 * time.Second

// checkMetaReplica rejoins the meta group when this node's meta replica has known no
// leader for metaRejoinAfter.
func (n *Node) checkMetaReplica(now time.Time) {
	if _, ok := n.leaderOf(meta.ShardID); ok {
		n.metaLeaderless = time.Time{}
		return
	}
	if n.metaLeaderless.IsZero() {
		n.metaLeaderless = now
		return
	}
	if now.Sub(n.metaLeaderless) < metaRejoinAfter {
		return
	}
	n.metaLeaderless = now // the next attempt in metaRejoinAfter
	resp, err := n.rejoinMeta()
	if err != nil {
		n.log.Debug("the meta replica has no leader; asking to rejoin failed", "err", err)
		return
	}
	if rid := resp.GetMetaReplicaId(); rid != 0 && rid != n.metaRID.Load() {
		if err := n.switchMetaReplica(rid); err != nil {
			n.log.Error("start the new meta replica", "meta_replica", rid, "err", err)
		}
	}
}

// rejoinMeta calls Join at the nodes of this node's (stale) view in turn.
func (n *Node) rejoinMeta() (*pb.JoinResponse, error) {
	v := n.view.Load()
	if v == nil {
		return nil, ErrNotReady
	}
	req := &pb.JoinRequest{NodeId: uint64(n.id.NodeID), ClientAddr: n.cfg.ClientAddr(), RaftAddr: n.cfg.RaftAddr(),
		GossipAddr: n.cfg.GossipAddr(), Zone: n.cfg.Zone, DeploymentId: n.cfg.DeploymentID}
	last := errors.New("no other node in the view")
	for _, nd := range v.SortedNodes() {
		if nd.ID == n.id.NodeID {
			continue
		}
		conn, err := n.dial(nd.ClientAddr)
		if err != nil {
			last = err
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
		resp, err := pb.NewClusterClient(conn).Join(ctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		last = err
		if status.Code(err) == codes.FailedPrecondition {
			break // removed from the cluster, or another deployment: every node says so
		}
	}
	return nil, last
}

// switchMetaReplica replaces this node's meta replica by a new, joining,
// non-voting one with replica ID rid, and records the ID in the identity file.
func (n *Node) switchMetaReplica(rid uint64) error {
	old := n.metaRID.Load()
	n.log.Warn("this node's meta replica was removed while it was away; rejoining the meta group with a new one",
		"old_meta_replica", old, "meta_replica", rid)
	if err := n.nh.StopReplica(uint64(meta.ShardID), old); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		return fmt.Errorf("stop the removed meta replica: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := n.nh.RemoveData(uint64(meta.ShardID), old)
		if err == nil || !errors.Is(err, dragonboat.ErrShardNotStopped) || time.Now().After(deadline) {
			if err != nil {
				n.log.Warn("remove the removed meta replica's data", "err", err)
			}
			break
		}
	}
	id := n.id
	id.MetaReplicaID, id.MetaVoter = rid, false
	if err := saveIdentity(n.cfg.Dir, id); err != nil {
		return err
	}
	n.metaRID.Store(rid)
	cfg := n.metaReplicaConfig(true)
	return n.nh.StartReplica(nil, true, meta.NewStateMachine(n.notifyMeta), cfg)
}

// renewRemovedMetaReplica gives a joiner whose meta replica was removed from the meta
// group (while it was gone) a new meta replica ID; anyone else comes back unchanged.
// The meta leader runs it inside Join.
func (n *Node) renewRemovedMetaReplica(ctx context.Context, joined *meta.Node) (*meta.Node, error) {
	mctx, cancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
	mem, err := n.nh.SyncGetShardMembership(mctx, uint64(meta.ShardID))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read the meta group's membership: %w", err)
	}
	if _, removed := mem.Removed[joined.MetaReplicaID()]; !removed {
		return joined, nil
	}
	r, _, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpNewMetaReplica, NewMetaReplica: &meta.NewMetaReplica{Node: joined.ID}})
	if err != nil {
		return nil, fmt.Errorf("give node %d a new meta replica: %w", joined.Num, err)
	}
	renewed, err := meta.ResultNode(r)
	if err != nil {
		return nil, err
	}
	n.log.Info("node rejoins the meta group with a new meta replica", "joiner", renewed.Num, "meta_replica", renewed.MetaReplicaID())
	return renewed, nil
}
