package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

func (n *Node) metaReplicaConfig(nonVoting bool) config.Config {
	return config.Config{
		ShardID:            uint64(meta.ShardID),
		ReplicaID:          n.metaRID.Load(),
		ElectionRTT:        n.cfg.ElectionRTT,
		HeartbeatRTT:       n.cfg.HeartbeatRTT,
		CheckQuorum:        true,
		PreVote:            true,
		SnapshotEntries:    1000,
		CompactionOverhead: 500,
		IsNonVoting:        nonVoting,
	}
}

// startMeta starts this node's meta replica: restart from disk, bootstrap a new
// cluster, or join an existing one. It returns gossip seeds learnt while joining.
func (n *Node) startMeta(ctx context.Context) ([]string, error) {
	factory := meta.NewStateMachine(n.notifyMeta)
	switch {
	case n.id.MetaStarted:
		if err := n.nh.StartReplica(nil, false, factory, n.metaReplicaConfig(!n.id.MetaVoter)); err != nil {
			return nil, fmt.Errorf("node: restart meta replica: %w", err)
		}
		return nil, nil
	case len(n.cfg.Join) == 0:
		members := map[uint64]dragonboat.Target{uint64(n.id.NodeID): n.cfg.RaftAddr()}
		if err := n.nh.StartReplica(members, false, factory, n.metaReplicaConfig(false)); err != nil {
			return nil, fmt.Errorf("node: bootstrap meta group: %w", err)
		}
		n.id.MetaStarted, n.id.MetaVoter = true, true
		n.log.Info("bootstrapped a new cluster")
		return nil, saveIdentity(n.cfg.Dir, n.id)
	default:
		resp, err := n.joinCluster(ctx)
		if err != nil {
			return nil, err
		}
		if err := n.nh.StartReplica(nil, true, factory, n.metaReplicaConfig(!resp.MetaVoter)); err != nil {
			return nil, fmt.Errorf("node: start joined meta replica: %w", err)
		}
		n.id.MetaStarted, n.id.MetaVoter = true, resp.MetaVoter
		n.log.Info("joined the cluster", "via", n.cfg.Join, "meta_voter", resp.MetaVoter)
		return resp.GossipSeeds, saveIdentity(n.cfg.Dir, n.id)
	}
}

// joinCluster asks the --join addresses in turn until one accepts, for up to a minute
// (the first node may still be starting). A peer that is not a shardlog node fails fast.
func (n *Node) joinCluster(ctx context.Context) (*pb.JoinResponse, error) {
	req := &pb.JoinRequest{
		NodeId:       uint64(n.id.NodeID),
		ClientAddr:   n.cfg.ClientAddr(),
		RaftAddr:     n.cfg.RaftAddr(),
		GossipAddr:   n.cfg.GossipAddr(),
		Zone:         n.cfg.Zone,
		DeploymentId: n.cfg.DeploymentID,
	}
	deadline := time.Now().Add(time.Minute)
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		for _, addr := range n.cfg.Join {
			conn, err := n.dial(addr)
			if err != nil {
				return nil, fmt.Errorf("node: --join %s: %w", addr, err)
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := pb.NewClusterClient(conn).Join(cctx, req)
			cancel()
			if err == nil {
				return resp, nil
			}
			last = fmt.Errorf("--join %s: %s", addr, status.Convert(err).Message())
			switch status.Code(err) {
			case codes.Unimplemented:
				return nil, fmt.Errorf("node: --join %s is not a shardlog node (it does not serve shardlog.v1.Cluster)", addr)
			case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists:
				return nil, fmt.Errorf("node: %w", last)
			}
			if notShardlog(err) {
				return nil, fmt.Errorf("node: --join %s is not a shardlog node: %s", addr, status.Convert(err).Message())
			}
			n.log.Warn("join attempt failed; retrying", "addr", addr, "err", last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("node: could not join the cluster within a minute: %w", last)
}

// notifyMeta is called by the meta state machine after every applied entry. It must
// not block.
func (n *Node) notifyMeta(uint64) {
	select {
	case n.metaChanged <- struct{}{}:
	default:
	}
}

// refreshView reads the local meta replica and publishes it when newer.
func (n *Node) refreshView() (*meta.State, error) {
	v, err := n.nh.StaleRead(uint64(meta.ShardID), nil)
	if err != nil {
		return n.view.Load(), err
	}
	return n.publishView(v)
}

// syncView does a linearizable read of the meta group (ReadIndex through the leader)
// so a topic created through another node a moment ago is seen here.
func (n *Node) syncView(ctx context.Context) (*meta.State, error) {
	cctx, cancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
	defer cancel()
	v, err := n.nh.SyncRead(cctx, uint64(meta.ShardID), nil)
	if err != nil {
		return n.view.Load(), err
	}
	return n.publishView(v)
}

// publishView installs a state read from the meta state machine unless the current
// view is at least as new: the view only moves forward.
func (n *Node) publishView(v any) (*meta.State, error) {
	st, ok := v.(*meta.State)
	if !ok {
		return n.view.Load(), fmt.Errorf("node: meta lookup returned %T", v)
	}
	for {
		cur := n.view.Load()
		if cur != nil && cur.Index >= st.Index {
			return cur, nil
		}
		if n.view.CompareAndSwap(cur, st) {
			return st, nil
		}
	}
}

// metaView returns the current view, or ErrNotReady before the first one.
func (n *Node) metaView() (*meta.State, error) {
	v := n.view.Load()
	if v == nil {
		return nil, ErrNotReady
	}
	return v, nil
}

// metaLoop refreshes the view when the meta state machine applies something (and
// once a second regardless), then reconciles the replicas on this node.
func (n *Node) metaLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.metaChanged:
		case now := <-tick.C:
			n.data.ForgetProducers(now.Add(-time.Minute))
		}
		v, err := n.refreshView()
		if err != nil {
			continue // not ready yet (replaying); the next tick retries
		}
		n.keepNum(v)
		n.watchRemoved(v)
		n.reconcile()
	}
}

// keepNum takes the node's readable number, once the view shows it, for its log
// lines.
func (n *Node) keepNum(v *meta.State) {
	if me, ok := v.Nodes[n.id.NodeID]; ok && me.Num != 0 {
		n.num.Store(uint32(me.Num))
	}
}

// registerLoop proposes this node's registration until the meta view shows it with
// its current addresses. The first node of a cluster registers itself this way; a
// joiner is registered by the meta leader but re-checks after an address change.
func (n *Node) registerLoop() {
	defer n.wg.Done()
	for attempt := 0; ; attempt++ {
		if v := n.view.Load(); v != nil {
			if me, ok := v.Nodes[n.id.NodeID]; ok && me.ClientAddr == n.cfg.ClientAddr() &&
				me.RaftAddr == n.cfg.RaftAddr() && me.GossipAddr == n.cfg.GossipAddr() && me.Zone == n.cfg.Zone {
				return
			}
			_, _, err := n.proposeMeta(n.ctx, meta.Command{Op: meta.OpRegisterNode, RegisterNode: &meta.RegisterNode{Node: n.self(v)}})
			if err == nil {
				n.notifyMeta(0)
				continue
			}
			if n.ctx.Err() != nil {
				return
			}
			n.log.Debug("register node failed; retrying", "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
		}
	}
}

// self describes this node for RegisterNode, keeping the voter flag the meta group
// has. It is registered without MetaVoters, so the apply takes that flag as given.
func (n *Node) self(v *meta.State) meta.Node {
	me := meta.Node{
		ID:         n.id.NodeID,
		ClientAddr: n.cfg.ClientAddr(),
		RaftAddr:   n.cfg.RaftAddr(),
		GossipAddr: n.cfg.GossipAddr(),
		Zone:       n.cfg.Zone,
		MetaVoter:  n.id.MetaVoter,
	}
	if v != nil {
		if cur, ok := v.Nodes[me.ID]; ok {
			me.MetaVoter = cur.MetaVoter
			me.JoinedIndex = cur.JoinedIndex
		}
	}
	return me
}

// proposeMeta proposes one command to the meta group through the local replica
// (dragonboat forwards it to the leader), retrying temporary failures within ctx.
// retried reports whether an earlier attempt may have committed too.
func (n *Node) proposeMeta(ctx context.Context, c meta.Command) (r statemachine.Result, retried bool, err error) {
	b, err := meta.Encode(c)
	if err != nil {
		return r, false, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	session := n.nh.GetNoOPSession(uint64(meta.ShardID))
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
		r, err = n.nh.SyncPropose(actx, session, b)
		cancel()
		if err == nil {
			return r, attempt > 0, meta.ResultError(r)
		}
		// Meta commands are idempotent or validated in apply (a retried CreateTopic
		// answers AlreadyExists), so a timed-out attempt may be retried.
		if !retryable(err, true) {
			return r, attempt > 0, err
		}
		select {
		case <-ctx.Done():
			return r, attempt > 0, fmt.Errorf("meta proposal: %w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(backoff(attempt)):
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 20 * time.Millisecond << min(attempt, 5)
	return min(d, 500*time.Millisecond)
}

// notShardlog recognises answers from something that is not a shardlog node: a
// gRPC server without our service, or a server that does not speak HTTP/2 at all.
func notShardlog(err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unimplemented:
		return true
	case codes.Unavailable, codes.Internal, codes.Unknown:
		m := st.Message()
		for _, s := range []string{"malformed header", "frame too large", "server preface", "http2", "content-type", "HTTP status code"} {
			if strings.Contains(m, s) {
				return true
			}
		}
	}
	return false
}
