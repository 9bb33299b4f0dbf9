// Package clienttest is an in-process fake of a shardlog cluster for tests of the client
// library and of tools built on it (CLI, bench, chaos).
//
// The fake serves the Admin and Log services of shardlog.v1 on 127.0.0.1 with the
// semantics clients rely on: dense per-shard offsets, idempotent produce deduplicated by
// (producer ID, sequence) with strict sequence order ("out of order sequence" is
// Aborted), long-poll Fetch returning stored batches unchanged (the first may start
// before the requested offset), OutOfRange outside [log start, next offset], and
// prefix truncation. Faults are injected with seeded probabilities, including the
// important "applied, but the client saw DeadlineExceeded" case.
package clienttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/proto/shardlogv1"
)

// ErrNoShard is returned by Server helpers for an unknown topic or shard.
var ErrNoShard = errors.New("clienttest: no such topic or shard")

// Faults are the probabilities (0..1) of injected Produce failures, drawn per request.
type Faults struct {
	// Unavailable fails a request before it is applied.
	Unavailable float64
	// ResourceExhausted fails a request before it is applied (queue full).
	ResourceExhausted float64
	// LateTimeout applies the batch, then answers DeadlineExceeded.
	LateTimeout float64
	// SpuriousAborted answers Aborted before applying even when the sequence is next.
	SpuriousAborted float64
	// AcceptUnknownProducer mimics the shard state machine, which accepts any sequence
	// from a producer ID it has not seen yet (instead of only sequence 0).
	AcceptUnknownProducer bool
	// MaxDelay delays each Produce by a random duration up to it, so concurrent
	// requests reach the shard out of order.
	MaxDelay time.Duration
	// Hang makes every Produce and Fetch wait until its caller gives up, as a node
	// stopped with SIGSTOP does (its TCP connections stay open).
	Hang bool
}

// Server is a fake shardlog node. It is safe for concurrent use.
type Server struct {
	shardlogv1.UnimplementedAdminServer
	shardlogv1.UnimplementedLogServer

	mu      sync.Mutex
	rng     *rand.Rand
	faults  Faults
	topics  map[string]*topic
	nextID  uint64
	nodeID  uint64        // the node this fake claims to be
	changed chan struct{} // closed and replaced on every append
	stats   Stats

	grpc *grpc.Server
	addr string
}

// Stats counts what the fake did.
type Stats struct {
	// Produces counts Produce requests; Applied the batches appended; Duplicates the
	// retried batches answered from the dedupe table; Injected the injected faults;
	// OutOfOrder the Aborted answers for a sequence ahead of the next expected one;
	// Fetches counts Fetch requests.
	Produces, Applied, Duplicates, Injected, OutOfOrder, Fetches int
}

type topic struct {
	info   *shardlogv1.TopicInfo
	shards []*shard
}

type storedBatch struct {
	base  uint64
	count uint64
	data  []byte
}

type shard struct {
	batches   []storedBatch
	start     uint64 // log start offset
	next      uint64
	producers map[uint64]*producerState
}

type producerState struct {
	last  uint64            // last applied sequence
	bases map[uint64]uint64 // sequence -> base offset, kept for ever
}

var topicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// NewServer returns a fake with no topics whose faults draw from seed.
func NewServer(seed uint64) *Server {
	return &Server{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		topics:  make(map[string]*topic),
		nextID:  100,
		nodeID:  1,
		changed: make(chan struct{}),
	}
}

// Start serves on a new 127.0.0.1 port and returns the address.
func (s *Server) Start() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(shardlogv1.MaxMessageBytes), grpc.MaxSendMsgSize(shardlogv1.MaxMessageBytes))
	shardlogv1.RegisterAdminServer(s.grpc, s)
	shardlogv1.RegisterLogServer(s.grpc, s)
	s.addr = lis.Addr().String()
	go func() { _ = s.grpc.Serve(lis) }()
	return s.addr, nil
}

// Addr returns the address Start listens on.
func (s *Server) Addr() string { return s.addr }

// Stop stops serving immediately.
func (s *Server) Stop() {
	if s.grpc != nil {
		s.grpc.Stop()
	}
}

// SetNodeID sets the node ID the fake claims (default 1): in the placement of topics
// created afterwards, in DescribeCluster, and in the shardlog-leader response header of
// Produce and Fetch, which names the node that served the call.
func (s *Server) SetNodeID(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodeID = id
}

// SetLeader makes DescribeTopic report shard idx of topic as led by node nodeID at
// client address addr, with this fake's own node as a follower replica (when nodeID is
// another node). The fake still serves the shard itself: it does not forward.
func (s *Server) SetLeader(topic string, idx uint32, nodeID uint64, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[topic]
	if !ok || int(idx) >= len(t.info.GetShards()) {
		return ErrNoShard
	}
	si := t.info.GetShards()[idx]
	si.LeaderNodeId = nodeID
	si.Replicas = []*shardlogv1.ReplicaInfo{{ReplicaId: 1, NodeId: s.nodeID, NodeNum: 1, ClientAddr: s.addr, Leader: nodeID == s.nodeID}}
	if nodeID != s.nodeID {
		si.Replicas = append(si.Replicas, &shardlogv1.ReplicaInfo{ReplicaId: 2, NodeId: nodeID, NodeNum: 2, ClientAddr: addr, Leader: true})
	}
	return nil
}

// markServed sets the response header that names this node as the one that served a
// Produce or Fetch, as real nodes do.
func (s *Server) markServed(ctx context.Context) {
	s.mu.Lock()
	id := s.nodeID
	s.mu.Unlock()
	_ = grpc.SetHeader(ctx, metadata.Pairs(shardlogv1.LeaderHeader, strconv.FormatUint(id, 10)))
}

// SetFaults replaces the injected fault probabilities.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

// CreateTopic implements shardlogv1.AdminServer.
func (s *Server) CreateTopic(_ context.Context, req *shardlogv1.CreateTopicRequest) (*shardlogv1.CreateTopicResponse, error) {
	spec := req.GetSpec()
	switch {
	case !topicName.MatchString(spec.GetName()):
		return nil, status.Errorf(codes.InvalidArgument, "invalid topic name %q", spec.GetName())
	case spec.GetShards() == 0 || spec.GetShards() > 1024:
		return nil, status.Errorf(codes.InvalidArgument, "shards must be 1..1024, got %d", spec.GetShards())
	case spec.GetReplicationFactor() < 1 || spec.GetReplicationFactor() > 7:
		return nil, status.Errorf(codes.InvalidArgument, "replication factor must be 1..7, got %d", spec.GetReplicationFactor())
	}
	if _, err := batch.ParseCodec(spec.GetCompression()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[spec.GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", spec.GetName())
	}
	t := &topic{info: &shardlogv1.TopicInfo{Spec: spec, CreatedIndex: s.nextID}}
	for i := range spec.GetShards() {
		s.nextID++
		t.info.Shards = append(t.info.Shards, &shardlogv1.ShardInfo{
			Index: i, ShardId: s.nextID, LeaderNodeId: s.nodeID,
			Replicas: []*shardlogv1.ReplicaInfo{{ReplicaId: 1, NodeId: s.nodeID, NodeNum: 1, ClientAddr: s.addr, Leader: true}},
		})
		t.shards = append(t.shards, &shard{producers: make(map[uint64]*producerState)})
	}
	s.topics[spec.GetName()] = t
	return &shardlogv1.CreateTopicResponse{Topic: t.describe(false)}, nil
}

// DeleteTopic implements shardlogv1.AdminServer.
func (s *Server) DeleteTopic(_ context.Context, req *shardlogv1.DeleteTopicRequest) (*shardlogv1.DeleteTopicResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[req.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetName())
	}
	delete(s.topics, req.GetName())
	s.notify()
	return &shardlogv1.DeleteTopicResponse{}, nil
}

// ListTopics implements shardlogv1.AdminServer.
func (s *Server) ListTopics(context.Context, *shardlogv1.ListTopicsRequest) (*shardlogv1.ListTopicsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &shardlogv1.ListTopicsResponse{Topics: s.sortedTopics()}, nil
}

func (s *Server) sortedTopics() []*shardlogv1.TopicInfo {
	var out []*shardlogv1.TopicInfo
	for _, t := range s.topics {
		out = append(out, t.describe(false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetSpec().GetName() < out[j].GetSpec().GetName() })
	return out
}

// DescribeTopic implements shardlogv1.AdminServer.
func (s *Server) DescribeTopic(_ context.Context, req *shardlogv1.DescribeTopicRequest) (*shardlogv1.DescribeTopicResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetName())
	}
	return &shardlogv1.DescribeTopicResponse{Topic: t.describe(req.GetOffsets())}, nil
}

func (t *topic) describe(offsets bool) *shardlogv1.TopicInfo {
	info := &shardlogv1.TopicInfo{Spec: t.info.GetSpec(), CreatedIndex: t.info.GetCreatedIndex()}
	for i, si := range t.info.GetShards() {
		c := &shardlogv1.ShardInfo{
			Index: si.GetIndex(), ShardId: si.GetShardId(), LeaderNodeId: si.GetLeaderNodeId(),
			Replicas: si.GetReplicas(),
		}
		if offsets {
			c.FirstOffset, c.NextOffset = t.shards[i].start, t.shards[i].next
		}
		info.Shards = append(info.Shards, c)
	}
	return info
}

// DescribeCluster implements shardlogv1.AdminServer: one node that leads everything.
func (s *Server) DescribeCluster(context.Context, *shardlogv1.DescribeClusterRequest) (*shardlogv1.DescribeClusterResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var replicas uint32
	for _, t := range s.topics {
		replicas += uint32(len(t.shards))
	}
	return &shardlogv1.DescribeClusterResponse{
		ThisNodeId: s.nodeID, MetaLeaderNodeId: s.nodeID, MetaIndex: s.nextID, ThisNodeNum: 1, MetaLeaderNum: 1,
		Nodes: []*shardlogv1.NodeInfo{{
			NodeId: s.nodeID, Num: 1, ClientAddr: s.addr, RaftAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2",
			Zone: "z1", State: "ALIVE", MetaVoter: true, Replicas: replicas, Leaders: replicas,
		}},
		Topics: s.sortedTopics(),
	}, nil
}

// shardLocked returns a topic's shard. Called with s.mu held.
func (s *Server) shardLocked(name string, idx uint32) (*shard, error) {
	t, ok := s.topics[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", name)
	}
	if int(idx) >= len(t.shards) {
		return nil, status.Errorf(codes.InvalidArgument, "topic %q has no shard %d", name, idx)
	}
	return t.shards[idx], nil
}

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}
