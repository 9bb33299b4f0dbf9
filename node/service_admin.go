package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/gossip"
	"shardlog/ids"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

type adminService struct {
	pb.UnimplementedAdminServer
	n *Node
}

func specFromProto(s *pb.TopicSpec) meta.TopicSpec {
	if s == nil {
		return meta.TopicSpec{}
	}
	return meta.TopicSpec{
		Name:              s.Name,
		Shards:            s.Shards,
		ReplicationFactor: s.ReplicationFactor,
		RetentionMs:       s.RetentionMs,
		RetentionBytes:    s.RetentionBytes,
		Compression:       s.Compression,
	}
}

func (n *Node) metaLimits() meta.Limits {
	return meta.Limits{
		MaxShardsPerTopic:    uint32(n.cfg.MaxShardsPerTopic),
		MaxReplicationFactor: uint32(n.cfg.MaxReplicationFactor),
		MaxTopics:            n.cfg.MaxTopics,
	}
}

// liveNodes are the registered nodes gossip reports ALIVE: the candidates for new replicas.
func (n *Node) liveNodes(v *meta.State) []ids.NodeID {
	var out []ids.NodeID
	for _, nd := range v.SortedNodes() {
		if n.nodeState(nd.ID) == gossip.StateAlive {
			out = append(out, nd.ID)
		}
	}
	return out
}

func (n *Node) nodeState(id ids.NodeID) gossip.State {
	if id == n.id.NodeID {
		return gossip.StateAlive
	}
	if n.gossip == nil {
		return ""
	}
	return n.gossip.State(id)
}

func (s *adminService) CreateTopic(ctx context.Context, req *pb.CreateTopicRequest) (*pb.CreateTopicResponse, error) {
	n := s.n
	spec := specFromProto(req.Spec)
	if err := meta.ValidateSpec(spec, n.metaLimits()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	v, err := n.syncView(ctx)
	if err != nil && v == nil {
		return nil, err
	}
	live := n.liveNodes(v)
	if int(spec.ReplicationFactor) > len(live) {
		return nil, status.Errorf(codes.FailedPrecondition, "replication factor %d exceeds the %d live nodes", spec.ReplicationFactor, len(live))
	}
	r, retried, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpCreateTopic, CreateTopic: &meta.CreateTopic{Spec: spec, Candidates: live, Limits: n.metaLimits()}})
	var topic *meta.Topic
	if err != nil {
		var me *meta.Error
		if !(retried && errors.As(err, &me) && me.Code == meta.CodeAlreadyExists) {
			return nil, err
		}
		// An earlier attempt of this very request committed: answer as it would have.
		fresh, ferr := n.syncView(ctx)
		if ferr != nil {
			return nil, err
		}
		t, ok := fresh.Topics[spec.Name]
		if !ok || t.ReplicationFactor != spec.ReplicationFactor || uint32(len(t.ShardList)) != spec.Shards {
			return nil, err
		}
		topic = t
	} else if topic, err = meta.ResultTopic(r); err != nil {
		return nil, err
	}
	n.refreshView()
	n.notifyMeta(0)
	n.waitLeaders(ctx, topic)
	v, _ = n.metaView()
	return &pb.CreateTopicResponse{Topic: n.topicInfo(ctx, v, topic, false)}, nil
}

// waitLeaders waits (bounded) until every shard of a new topic has elected a leader,
// so the topic is usable when CreateTopic returns. Not having one is not an error:
// producers retry until their deadline.
func (n *Node) waitLeaders(ctx context.Context, t *meta.Topic) {
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Add(-time.Second).Before(deadline) {
		deadline = d.Add(-time.Second)
	}
	for time.Now().Before(deadline) {
		v, err := n.metaView()
		if err != nil {
			return
		}
		st := n.collectStatus(ctx, v, t.ShardList)
		all := true
		for _, sh := range t.ShardList {
			if st[sh.ShardID].leader == 0 {
				all = false
				break
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *adminService) DeleteTopic(ctx context.Context, req *pb.DeleteTopicRequest) (*pb.DeleteTopicResponse, error) {
	if err := meta.ValidateTopicName(req.Name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	_, retried, err := s.n.proposeMeta(ctx, meta.Command{Op: meta.OpDeleteTopic, DeleteTopic: &meta.DeleteTopic{Name: req.Name}})
	if err != nil {
		var me *meta.Error
		if !(retried && errors.As(err, &me) && me.Code == meta.CodeNotFound) {
			return nil, err
		}
	}
	s.n.notifyMeta(0)
	return &pb.DeleteTopicResponse{}, nil
}

// adminView is the freshest view available: linearizable when the meta leader
// answers, else the local copy (so reads still work in a minority partition).
func (n *Node) adminView(ctx context.Context) (*meta.State, error) {
	// A meta leader on a node gossip no longer holds ALIVE would hold the read until
	// its timeout; the meta group elects anew within a second, the local view serves.
	if leader, ok := n.metaLeader(); ok && !n.peerAnswering(leader) {
		return n.metaView()
	}
	if v, err := n.syncView(ctx); err == nil && v != nil {
		return v, nil
	}
	return n.metaView()
}

func (s *adminService) ListTopics(ctx context.Context, _ *pb.ListTopicsRequest) (*pb.ListTopicsResponse, error) {
	v, err := s.n.adminView(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListTopicsResponse{}
	for _, t := range v.SortedTopics() {
		resp.Topics = append(resp.Topics, s.n.topicInfo(ctx, v, t, false))
	}
	return resp, nil
}

func (s *adminService) DescribeTopic(ctx context.Context, req *pb.DescribeTopicRequest) (*pb.DescribeTopicResponse, error) {
	v, err := s.n.adminView(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := v.Topics[req.Name]
	if !ok {
		if v, err = s.n.confirmMissing(ctx, req.Name); err != nil {
			return nil, err
		}
		t = v.Topics[req.Name]
	}
	return &pb.DescribeTopicResponse{Topic: s.n.topicInfo(ctx, v, t, true)}, nil
}

// topicInfo converts a topic; withStatus adds leaders and offsets from the replicas.
func (n *Node) topicInfo(ctx context.Context, v *meta.State, t *meta.Topic, withStatus bool) *pb.TopicInfo {
	info := &pb.TopicInfo{
		Spec: &pb.TopicSpec{
			Name: t.Name, Shards: uint32(len(t.ShardList)), ReplicationFactor: t.ReplicationFactor,
			RetentionMs: t.RetentionMs, RetentionBytes: t.RetentionBytes, Compression: t.Compression,
		},
		CreatedIndex: t.CreatedIndex,
	}
	var st map[ids.ShardID]shardView
	if withStatus {
		st = n.collectStatus(ctx, v, t.ShardList)
	}
	for _, sh := range t.ShardList {
		si := &pb.ShardInfo{Index: sh.Index, ShardId: uint64(sh.ShardID)}
		sv, ok := st[sh.ShardID]
		if ok {
			si.LeaderNodeId, si.FirstOffset, si.NextOffset, si.StatusError = uint64(sv.leader), uint64(sv.first), uint64(sv.next), sv.err
		}
		alive := 0
		for _, r := range sh.Replicas {
			ri := &pb.ReplicaInfo{ReplicaId: uint64(r.ReplicaID), NodeId: uint64(r.NodeID), NodeNum: uint32(v.Num(r.NodeID)),
				Leader: ok && sv.leader == r.NodeID}
			if nd, ok := v.Nodes[r.NodeID]; ok {
				ri.ClientAddr = nd.ClientAddr
			}
			if n.nodeState(r.NodeID) == gossip.StateAlive {
				alive++
			}
			si.Replicas = append(si.Replicas, ri)
		}
		si.UnderReplicated = alive < int(t.ReplicationFactor)
		if m, ok := v.Moves[sh.ShardID]; ok {
			si.Move = moveInfo(v, *m)
		}
		info.Shards = append(info.Shards, si)
	}
	return info
}

func (s *adminService) DescribeCluster(ctx context.Context, _ *pb.DescribeClusterRequest) (*pb.DescribeClusterResponse, error) {
	n := s.n
	v, err := n.adminView(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.DescribeClusterResponse{ThisNodeId: uint64(n.id.NodeID), MetaIndex: v.Index}
	if leader, ok := n.metaLeader(); ok {
		resp.MetaLeaderNodeId = uint64(leader)
	}
	resp.ThisNodeNum, resp.MetaLeaderNum = uint32(v.Num(n.id.NodeID)), uint32(v.Num(ids.NodeID(resp.MetaLeaderNodeId)))
	counts := map[ids.NodeID]*pb.NodeInfo{}
	for _, nd := range v.SortedNodes() {
		ni := n.nodeInfo(nd)
		counts[nd.ID] = ni
		resp.Nodes = append(resp.Nodes, ni)
	}
	// Operators read nodes by number: 1, 2, 3, ...
	slices.SortFunc(resp.Nodes, func(a, b *pb.NodeInfo) int { return cmp.Compare(a.Num, b.Num) })
	for _, m := range v.SortedMoves() {
		resp.Moves = append(resp.Moves, moveInfo(v, m))
	}
	for _, t := range v.SortedTopics() {
		ti := n.topicInfo(ctx, v, t, true)
		for _, si := range ti.Shards {
			for _, ri := range si.Replicas {
				if ni, ok := counts[ids.NodeID(ri.NodeId)]; ok {
					ni.Replicas++
					if ri.Leader {
						ni.Leaders++
					}
				}
			}
		}
		resp.Topics = append(resp.Topics, ti)
	}
	return resp, nil
}

type clusterService struct {
	pb.UnimplementedClusterServer
	n *Node
	// joinMu serializes the joins this node handles as meta leader: the
	// address check against its view and the meta membership change, which
	// dragonboat takes one at a time. The voter choice is the apply's.
	joinMu sync.Mutex
}

func (c *clusterService) ShardStatus(_ context.Context, req *pb.ShardStatusRequest) (*pb.ShardStatusResponse, error) {
	return c.n.shardStatus(req.ShardIds), nil
}

// Join registers a new node and adds it to the meta group. Any node accepts the
// call and forwards it to the meta leader, which does the work.
func (c *clusterService) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	n := c.n
	switch {
	case req.NodeId == 0:
		return nil, status.Error(codes.InvalidArgument, "join: node_id must not be 0")
	case req.ClientAddr == "" || req.RaftAddr == "" || req.GossipAddr == "":
		return nil, status.Error(codes.InvalidArgument, "join: client, raft and gossip addresses are required")
	case req.DeploymentId != n.cfg.DeploymentID:
		return nil, status.Errorf(codes.FailedPrecondition, "join: deployment ID %x does not match this cluster's %x", req.DeploymentId, n.cfg.DeploymentID)
	}
	leader, ok := n.metaLeader()
	if !ok {
		return nil, status.Error(codes.Unavailable, "join: the meta group has no leader right now")
	}
	if leader != n.id.NodeID {
		var resp *pb.JoinResponse
		err := n.forwardToNode(ctx, leader, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
			resp, err = pb.NewClusterClient(conn).Join(ctx, req)
			return err
		})
		return resp, err
	}
	return c.joinAsLeader(ctx, req)
}

// joinAsLeader registers the joiner and adds it to the meta Raft group, on the
// meta leader.
func (c *clusterService) joinAsLeader(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	n := c.n
	joiner := ids.NodeID(req.NodeId)
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	v, err := n.syncView(ctx)
	if err != nil {
		return nil, err
	}
	for _, nd := range v.SortedNodes() {
		if nd.ID != joiner && (nd.RaftAddr == req.RaftAddr || nd.ClientAddr == req.ClientAddr) {
			return nil, status.Errorf(codes.AlreadyExists,
				"join: address %s/%s already belongs to node %d; start that node with its old --dir instead",
				req.ClientAddr, req.RaftAddr, nd.ID)
		}
	}
	if _, ok := v.Nodes[n.id.NodeID]; !ok {
		// The first node registers itself in registerLoop; a join that comes
		// first would take number 1. Register this node now (the same command
		// registerLoop proposes: applying it twice changes nothing).
		if _, _, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpRegisterNode, RegisterNode: &meta.RegisterNode{Node: n.self(v)}}); err != nil {
			return nil, fmt.Errorf("join: register the meta leader first: %w", err)
		}
	}
	// The apply chooses voter or non-voting (a registered node keeps its flag),
	// in log order, so joins through two leaders cannot both take the last seat.
	reg := &meta.RegisterNode{MetaVoters: n.cfg.MetaVoters, Node: meta.Node{ID: joiner,
		ClientAddr: req.ClientAddr, RaftAddr: req.RaftAddr, GossipAddr: req.GossipAddr, Zone: req.Zone}}
	r, _, err := n.proposeMeta(ctx, meta.Command{Op: meta.OpRegisterNode, RegisterNode: reg})
	if err != nil {
		return nil, fmt.Errorf("join: register node: %w", err)
	}
	joined, err := meta.ResultNode(r)
	if err != nil {
		return nil, fmt.Errorf("join: register node: %w", err)
	}
	joined, err = n.renewRemovedMetaReplica(ctx, joined)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	voter := joined.MetaVoter
	if err := n.addMetaMember(ctx, joined.MetaReplicaID(), req.RaftAddr, voter); err != nil {
		return nil, fmt.Errorf("join: add to meta group: %w", err)
	}
	n.notifyMeta(0)
	seeds := []string{n.cfg.GossipAddr()}
	for _, nd := range v.SortedNodes() {
		if nd.ID != n.id.NodeID && nd.ID != joiner {
			seeds = append(seeds, nd.GossipAddr)
		}
	}
	sort.Strings(seeds[1:])
	n.log.Info("node joined", "joiner", joined.Num, "joiner_id", req.NodeId, "client", req.ClientAddr, "meta_voter", voter)
	return &pb.JoinResponse{MetaVoter: voter, GossipSeeds: seeds, DeploymentId: n.cfg.DeploymentID, MetaReplicaId: joined.MetaReplicaID()}, nil
}

// addMetaMember adds a meta replica (a node's MetaReplicaID) to the meta Raft group
// unless it already is a member.
func (n *Node) addMetaMember(ctx context.Context, id uint64, raftAddr string, voter bool) error {
	for attempt := 0; ; attempt++ {
		mctx, cancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
		m, err := n.nh.SyncGetShardMembership(mctx, uint64(meta.ShardID))
		cancel()
		if err == nil {
			if _, ok := m.Nodes[id]; ok {
				return nil
			}
			if _, ok := m.NonVotings[id]; ok && !voter {
				return nil
			}
			if _, ok := m.Removed[id]; ok {
				return status.Errorf(codes.FailedPrecondition, "meta replica %d was removed from the meta group and cannot return with the same ID", id)
			}
			actx, cancel := context.WithTimeout(ctx, n.cfg.ProposalTimeout)
			if voter {
				err = n.nh.SyncRequestAddReplica(actx, uint64(meta.ShardID), id, raftAddr, m.ConfigChangeID)
			} else {
				err = n.nh.SyncRequestAddNonVoting(actx, uint64(meta.ShardID), id, raftAddr, m.ConfigChangeID)
			}
			cancel()
			if err == nil {
				return nil
			}
		}
		if !retryable(err, true) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(backoff(attempt)):
		}
	}
}
