package node

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"shardlog/ids"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

// maxHops bounds node-to-node forwarding of one request: client -> any node ->
// a replica's node -> the leader's node.
const maxHops = 2

func (n *Node) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("handler panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
		}
	}()
	resp, err = handler(ctx, req)
	if err != nil {
		err = toStatus(err)
		if n.log.Enabled(ctx, slog.LevelDebug) {
			n.log.Debug("request failed", "method", info.FullMethod, "err", err)
		}
	}
	return resp, err
}

func (n *Node) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("stream handler panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
		}
	}()
	return toStatus(handler(srv, ss))
}

// resolve finds a topic's shard in the meta view. A topic missing from the local view
// is looked up again through the meta leader, since it may have been created through
// another node a moment ago.
func (n *Node) resolve(ctx context.Context, topic string, index uint32) (*meta.State, *meta.Topic, meta.Shard, error) {
	v, err := n.metaView()
	if err != nil {
		return nil, nil, meta.Shard{}, err
	}
	t, ok := v.Topics[topic]
	if !ok {
		fresh, err := n.confirmMissing(ctx, topic)
		if err != nil {
			return nil, nil, meta.Shard{}, err
		}
		v = fresh
		t = v.Topics[topic]
	}
	if int(index) >= len(t.ShardList) {
		return nil, nil, meta.Shard{}, status.Errorf(codes.NotFound, "topic %q has %d shards (0..%d); shard %d does not exist",
			topic, len(t.ShardList), len(t.ShardList)-1, index)
	}
	return v, t, t.ShardList[index], nil
}

// confirmMissing looks a topic that the local view lacks up again through the meta
// leader. It answers NotFound only when the leader's state confirms the topic does not
// exist, and Unavailable when the meta leader cannot be reached: a node that is
// starting, or cut off, may simply not have heard of the topic yet. On success the
// returned view holds the topic.
func (n *Node) confirmMissing(ctx context.Context, topic string) (*meta.State, error) {
	if err := meta.ValidateTopicName(topic); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	fresh, err := n.syncView(ctx)
	if err != nil || fresh == nil {
		return nil, status.Errorf(codes.Unavailable, "topic %q is not in this node's copy of the meta state, and the meta leader could not confirm it (this node may be starting or cut off; retry): %v", topic, err)
	}
	if _, ok := fresh.Topics[topic]; !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", topic)
	}
	return fresh, nil
}

// target says where a shard request goes next: this node, or a peer's client address.
type target struct {
	local bool
	node  ids.NodeID
	addr  string
}

// route picks where to send a request for sh. A node with a replica knows the leader
// from dragonboat; one without uses the leader hint, else a replica's node (rotating
// with attempt so a dead node is skipped), which forwards once more if needed.
func (n *Node) route(v *meta.State, sh meta.Shard, hops uint32, attempt int) (target, error) {
	if rid, ok := n.hostedReplica(sh.ShardID); ok {
		if leader, ok := n.leaderOf(sh.ShardID); ok {
			if leader == rid {
				return target{local: true, node: n.id.NodeID}, nil
			}
			for _, r := range v.Members(sh) {
				if r.ReplicaID != leader {
					continue
				}
				if !n.peerAlive(r.NodeID) {
					// Its node stopped answering gossip: the wake loop has the
					// survivors elect; a call there would hang until it times out.
					return target{}, fmt.Errorf("%w (shard %d: leader node %d is %s, election in progress)",
						errNoLeader, sh.ShardID, r.NodeID, n.nodeState(r.NodeID))
				}
				if nd, ok := v.Nodes[r.NodeID]; ok && hops < maxHops {
					return target{node: r.NodeID, addr: nd.ClientAddr}, nil
				}
			}
		}
		return target{}, fmt.Errorf("%w (shard %d: election in progress)", errNoLeader, sh.ShardID)
	}
	if hops >= maxHops {
		return target{}, fmt.Errorf("%w (shard %d: forwarded %d times)", errNoLeader, sh.ShardID, hops)
	}
	if h, ok := n.leaderHints.Load(sh.ShardID); ok && attempt == 0 && n.peerAlive(h.(ids.NodeID)) {
		if nd, ok := v.Nodes[h.(ids.NodeID)]; ok {
			return target{node: nd.ID, addr: nd.ClientAddr}, nil
		}
	}
	if len(sh.Replicas) == 0 {
		return target{}, fmt.Errorf("%w (shard %d has no replicas)", errNoLeader, sh.ShardID)
	}
	r := n.rotateReplicas(sh.Replicas, attempt)
	nd, ok := v.Nodes[r.NodeID]
	if !ok {
		return target{}, fmt.Errorf("%w (shard %d: replica node %d unknown)", errNoLeader, sh.ShardID, r.NodeID)
	}
	return target{node: nd.ID, addr: nd.ClientAddr}, nil
}

// rotateReplicas picks replica attempt (mod their count) among those not on a down
// node, or among all of them when every one is down.
func (n *Node) rotateReplicas(rs []meta.Replica, attempt int) meta.Replica {
	down := n.downNodes()
	live := 0
	for _, r := range rs {
		if !down[r.NodeID] {
			live++
		}
	}
	if live == 0 {
		return rs[attempt%len(rs)]
	}
	k := attempt % live
	for _, r := range rs {
		if !down[r.NodeID] {
			if k == 0 {
				return r
			}
			k--
		}
	}
	return rs[0] // not reached: k < live
}

// markServed tells the caller (maybe a forwarding node) which node served the call.
func (n *Node) markServed(ctx context.Context) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(pb.LeaderHeader, strconv.FormatUint(uint64(n.id.NodeID), 10)))
}

// learnLeader records the serving node from a forwarded call's header.
func (n *Node) learnLeader(shardID ids.ShardID, md metadata.MD, err error) {
	if vals := md.Get(pb.LeaderHeader); len(vals) == 1 {
		if id, perr := strconv.ParseUint(vals[0], 10, 64); perr == nil && id != 0 {
			n.leaderHints.Store(shardID, ids.NodeID(id))
			return
		}
	}
	if err != nil {
		n.leaderHints.Delete(shardID)
	}
}

// routed runs a routed produce or fetch. Only the node the client called retries
// (retryLoop): a forwarded request gets one attempt, and its failure goes straight back
// as Unavailable, so the entry node can back off and try where the leader is now
// instead of waiting behind a hop that retries until the deadline.
func routed[T any](ctx context.Context, hops uint32, dedupe bool, attempt func(i int) (T, error)) (T, error) {
	if hops > 0 {
		return attempt(0)
	}
	return retryLoop(ctx, dedupe, attempt)
}

// forwardSlack is the time a forwarded call may take beyond the work of the hops after
// it: network and queueing on loopback or a LAN.
const forwardSlack = 500 * time.Millisecond

// forwardTimeout bounds one forwarded attempt sent by a node at hops: the leader's one
// proposal attempt (--proposal-timeout) plus slack for each hop still to come. A call
// to a node that hangs (SIGSTOP, a cut link) then fails in seconds and is retried
// where the leader is now, instead of holding the request until its deadline.
func (n *Node) forwardTimeout(hops uint32) time.Duration {
	return n.cfg.ProposalTimeout + time.Duration(maxHops-min(hops, maxHops)+1)*forwardSlack
}

// forward runs one forwarded call to a peer's client address with a deadline of
// timeout. When gossip reports the peer failed while the call waits (abortPeer), the
// call ends at once with an unknown outcome (DeadlineExceeded: a produce may still have
// been committed there, so only a deduplicated request is retried).
func (n *Node) forward(ctx context.Context, addr string, timeout time.Duration, do func(context.Context, *grpc.ClientConn) error) error {
	conn, err := n.dial(addr)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, untrack := n.peers.track(addr, cancel)
	defer untrack()
	err = do(fctx, conn)
	if err != nil && c.aborted.Load() && ctx.Err() == nil {
		return status.Errorf(codes.DeadlineExceeded, "forward to %s cut short: gossip reports the node failed; outcome unknown", addr)
	}
	return err
}

// abortPeer cuts short the calls forwarded to a node that gossip reports failed: a
// hung node (SIGSTOP, a cut link) would hold them until their timeout.
func (n *Node) abortPeer(id ids.NodeID) {
	v := n.view.Load()
	if v == nil {
		return
	}
	if nd, ok := v.Nodes[id]; ok {
		if k := n.peers.abort(nd.ClientAddr); k > 0 {
			n.log.Info("cut short calls forwarded to a failed peer", "peer", uint64(id), "calls", k)
		}
	}
}

// pollWait is how long a fetch at the end of the log waits for new data: what it asked
// for, at most limit, and short enough to answer (empty) before ctx's deadline rather
// than fail with DeadlineExceeded. It leaves a tenth of the time left, at most a
// second, for the answer to travel back.
func pollWait(ctx context.Context, asked, limit time.Duration) time.Duration {
	w := min(asked, limit)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		w = min(w, left-min(left/10, time.Second))
	}
	return max(w, 0)
}

// retryLoop runs attempt until it succeeds, fails for good, or ctx ends, backing off
// between attempts.
func retryLoop[T any](ctx context.Context, dedupe bool, attempt func(i int) (T, error)) (T, error) {
	var zero T
	for i := 0; ; i++ {
		v, err := attempt(i)
		if err == nil {
			return v, nil
		}
		if !retryable(err, dedupe) {
			return zero, err
		}
		select {
		case <-ctx.Done():
			if status.Code(toStatus(err)) == codes.Unavailable {
				return zero, status.Errorf(codes.Unavailable, "%s (gave up at the request deadline)", status.Convert(toStatus(err)).Message())
			}
			return zero, err
		case <-time.After(routeBackoff(i)):
		}
	}
}

// routeBackoff is the wait before retry i+1 of a routed produce or fetch. It stays
// short: while a shard elects a new leader its requests wait here, and the first
// retry after the election is what the client sees as the end of the outage. A
// retry is cheap (a local lookup and at most one call to a node), so polling every
// 100 ms costs little; a longer cap added up to 500 ms to every failover.
func routeBackoff(i int) time.Duration {
	return min(10*time.Millisecond<<min(i, 4), 100*time.Millisecond)
}
