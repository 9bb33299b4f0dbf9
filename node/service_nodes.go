package node

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/gossip"
	"shardlog/ids"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

// DrainNode starts (or cancels) the drain of a node: the meta leader's controller
// then moves every replica off it, and with them the leaderships. It answers at
// once; `shardlog node drain --wait` follows the moves through DescribeCluster.
func (s *adminService) DrainNode(ctx context.Context, req *pb.DrainNodeRequest) (*pb.DrainNodeResponse, error) {
	n := s.n
	v, err := n.syncView(ctx)
	if err != nil && v == nil {
		return nil, err
	}
	nd, err := nodeByNum(v, req.Node)
	if err != nil {
		return nil, err
	}
	if !req.Cancel {
		if err := n.canDrain(v, nd); err != nil {
			return nil, err
		}
	}
	c := meta.Command{Op: meta.OpSetNodeDraining, SetNodeDraining: &meta.SetNodeDraining{Node: nd.ID, Draining: !req.Cancel}}
	r, _, err := n.proposeMeta(ctx, c)
	if err != nil {
		return nil, err
	}
	got, err := meta.ResultNode(r)
	if err != nil {
		return nil, err
	}
	n.log.Info("node drain set", "target", got.Num, "draining", got.Draining)
	return &pb.DrainNodeResponse{Node: n.nodeInfo(got)}, nil
}

// canDrain refuses a drain that could never finish: the nodes left to receive
// replicas must be at least as many as the highest replication factor.
func (n *Node) canDrain(v *meta.State, target *meta.Node) error {
	receivers := 0
	for _, nd := range v.SortedNodes() {
		if nd.ID != target.ID && !nd.Draining && n.nodeState(nd.ID) == gossip.StateAlive {
			receivers++
		}
	}
	for _, t := range v.SortedTopics() {
		if int(t.ReplicationFactor) > receivers {
			return status.Errorf(codes.FailedPrecondition,
				"draining node %d would leave %d live nodes to hold the replicas of topic %q, which has replication factor %d: add a node first",
				target.Num, receivers, t.Name, t.ReplicationFactor)
		}
	}
	return nil
}

// RemoveNode removes an empty node for good. The meta leader does it: it takes
// the node out of the meta table, then out of the meta Raft group; the node, if
// it still runs, sees itself removed and leaves gossip.
func (s *adminService) RemoveNode(ctx context.Context, req *pb.RemoveNodeRequest) (*pb.RemoveNodeResponse, error) {
	n := s.n
	if leader, ok := n.metaLeader(); !ok {
		return nil, status.Error(codes.Unavailable, "remove node: the meta group has no leader right now")
	} else if leader != n.id.NodeID {
		var resp *pb.RemoveNodeResponse
		err := n.forwardToNode(ctx, leader, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
			resp, err = pb.NewAdminClient(conn).RemoveNode(ctx, req)
			return err
		})
		return resp, err
	}
	v, err := n.syncView(ctx)
	if err != nil {
		return nil, err
	}
	for id, num := range v.Removed {
		if uint32(num) == req.Node && req.Node != 0 {
			// Removed already (a retried call): finish the meta group part, if
			// the first attempt did not get that far, and answer as it would have.
			if err := n.removeMetaMember(ctx, uint64(id)); err != nil {
				return nil, err
			}
			return &pb.RemoveNodeResponse{Node: &pb.NodeInfo{NodeId: uint64(id), Num: uint32(num), State: "REMOVED"}}, nil
		}
	}
	nd, err := nodeByNum(v, req.Node)
	if err != nil {
		return nil, err
	}
	if nd.ID == n.id.NodeID {
		return nil, status.Errorf(codes.FailedPrecondition, "node %d leads the meta group: drain it first (its meta vote moves to another node), then remove it", nd.Num)
	}
	if held := len(v.ShardsOnNode(nd.ID)); held > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "node %d still holds %d replicas: drain it first (shardlog node drain %d --wait), or wait until its replicas were moved after --dead-after", nd.Num, held, nd.Num)
	}
	if nd.MetaVoter {
		c := meta.Command{Op: meta.OpSetMetaVoter, SetMetaVoter: &meta.SetMetaVoter{Node: nd.ID, Voter: false}}
		if _, _, err := n.proposeMeta(ctx, c); err != nil {
			return nil, err
		}
	}
	if _, _, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpRemoveNode, RemoveNode: &meta.RemoveNode{Node: nd.ID}}); err != nil {
		return nil, err
	}
	n.letRemovedNodeLeave(ctx, nd)
	if err := n.removeMetaMember(ctx, nd.MetaReplicaID()); err != nil {
		return nil, fmt.Errorf("node %d is removed from the table, but not yet from the meta Raft group (the controller retries): %w", nd.Num, err)
	}
	n.log.Info("node removed", "removed", nd.Num, "removed_id", nd.ID)
	return &pb.RemoveNodeResponse{Node: n.nodeInfo(nd)}, nil
}

// letRemovedNodeLeave gives a removed node that still runs the chance to see its
// removal before it is taken out of the meta Raft group (after that its copy of
// the meta state stops): a DescribeCluster makes it read the meta group, and its
// meta loop then leaves gossip. It waits at most a few seconds for gossip to
// report the node LEFT; a node that is down is not waited for.
func (n *Node) letRemovedNodeLeave(ctx context.Context, nd *meta.Node) {
	if n.nodeState(nd.ID) != gossip.StateAlive {
		return
	}
	if conn, err := n.dial(nd.ClientAddr); err == nil {
		cctx, cancel := context.WithTimeout(ctx, n.cfg.DownProbeTimeout)
		_, _ = pb.NewAdminClient(conn).DescribeCluster(cctx, &pb.DescribeClusterRequest{})
		cancel()
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		if n.nodeState(nd.ID) == gossip.StateLeft {
			return
		}
	}
	n.log.Warn("removed node did not leave gossip in time; taking it out of the meta group anyway", "removed", nd.Num)
}

// forwardToNode calls a registered node by ID.
func (n *Node) forwardToNode(ctx context.Context, id ids.NodeID, do func(context.Context, *grpc.ClientConn) error) error {
	v, err := n.metaView()
	if err != nil {
		return err
	}
	nd, ok := v.Nodes[id]
	if !ok {
		return status.Errorf(codes.Unavailable, "node %d is not in this node's view yet", uint64(id))
	}
	conn, err := n.dial(nd.ClientAddr)
	if err != nil {
		return err
	}
	return do(ctx, conn)
}

// nodeByNum finds a registered node by its readable number.
func nodeByNum(v *meta.State, num uint32) (*meta.Node, error) {
	if num == 0 {
		return nil, status.Error(codes.InvalidArgument, "node number 0 is invalid: nodes are numbered from 1 (see shardlog node list)")
	}
	nd, ok := v.NodeByNum(ids.NodeNum(num))
	if ok {
		return nd, nil
	}
	for _, removed := range v.Removed {
		if removed == ids.NodeNum(num) {
			return nil, status.Errorf(codes.FailedPrecondition, "node %d was removed from the cluster", num)
		}
	}
	return nil, status.Errorf(codes.NotFound, "node %d does not exist (see shardlog node list)", num)
}

// nodeInfo converts a registered node, with its state as this node sees it.
func (n *Node) nodeInfo(nd *meta.Node) *pb.NodeInfo {
	state := string(n.nodeState(nd.ID))
	if state == "" {
		state = "UNKNOWN"
	}
	ni := &pb.NodeInfo{NodeId: uint64(nd.ID), Num: uint32(nd.Num), ClientAddr: nd.ClientAddr, RaftAddr: nd.RaftAddr,
		GossipAddr: nd.GossipAddr, Zone: nd.Zone, State: state, MetaVoter: nd.MetaVoter, Draining: nd.Draining}
	ni.DiskFull, ni.DiskFreeBytes, ni.MinFreeDiskBytes = n.diskInfo(nd.ID)
	return ni
}

// moveInfo converts a move in progress.
func moveInfo(v *meta.State, m meta.Move) *pb.MoveInfo {
	mi := &pb.MoveInfo{ShardId: uint64(m.ShardID), Topic: m.Topic,
		FromReplicaId: uint64(m.From.ReplicaID), FromNode: uint32(v.Num(m.From.NodeID)),
		ToReplicaId: uint64(m.To.ReplicaID), ToNode: uint32(v.Num(m.To.NodeID)),
		Phase: string(m.Phase), Reason: m.Reason}
	if t, ok := v.Topics[m.Topic]; ok {
		for _, sh := range t.ShardList {
			if sh.ShardID == m.ShardID {
				mi.ShardIndex = sh.Index
			}
		}
	}
	return mi
}

// watchRemoved makes a node that finds itself removed from the cluster leave
// gossip, once, and say so.
func (n *Node) watchRemoved(v *meta.State) {
	if _, removed := v.Removed[n.id.NodeID]; !removed || n.leftGossip || n.gossip == nil {
		return
	}
	n.leftGossip = true
	n.log.Warn("this node was removed from the cluster (shardlog node remove); it left gossip and holds no replicas: stop it, and start it with an empty --dir to join as a new node")
	if err := n.gossip.Leave(2 * time.Second); err != nil {
		n.log.Warn("leave gossip", "err", err)
	}
}
