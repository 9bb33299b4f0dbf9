package node

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
)

// defaultFetchBytes is used when a fetch asks for max_bytes 0.
const defaultFetchBytes = 1 << 20

type logService struct {
	pb.UnimplementedLogServer
	n *Node
}

func (s *logService) Produce(ctx context.Context, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	n := s.n
	if len(req.Batch) == 0 {
		return nil, status.Error(codes.InvalidArgument, "produce: empty batch")
	}
	if len(req.Batch) > n.cfg.MaxBatchBytes {
		return nil, status.Errorf(codes.InvalidArgument, "produce: batch of %d bytes exceeds the limit of %d bytes (--max-batch-bytes)",
			len(req.Batch), n.cfg.MaxBatchBytes)
	}
	v, _, sh, err := n.resolve(ctx, req.Topic, req.Shard)
	if err != nil {
		return nil, err
	}
	// Validate at the edge, once: the node the client called decompresses and walks
	// every record; forwarded copies are only CRC-checked again when applied.
	if req.Hops == 0 {
		if _, err := batch.Validate(req.Batch, n.limits()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "produce to %s/%d: %v", req.Topic, req.Shard, err)
		}
	}
	return routed(ctx, req.Hops, req.ProducerId != 0, func(attempt int) (*pb.ProduceResponse, error) {
		t, err := n.route(v, sh, req.Hops, attempt)
		if err != nil {
			return nil, err
		}
		if t.local {
			return n.produceLocal(ctx, sh.ShardID, req)
		}
		fwd := &pb.ProduceRequest{Topic: req.Topic, Shard: req.Shard, ProducerId: req.ProducerId,
			Sequence: req.Sequence, Batch: req.Batch, Hops: req.Hops + 1}
		var md metadata.MD
		var resp *pb.ProduceResponse
		err = n.forward(ctx, t.addr, n.forwardTimeout(req.Hops), func(ctx context.Context, conn *grpc.ClientConn) (err error) {
			resp, err = pb.NewLogClient(conn).Produce(ctx, fwd, grpc.Header(&md))
			return err
		})
		n.learnLeader(sh.ShardID, md, err)
		return resp, err
	})
}

func (n *Node) limits() batch.Limits {
	l := batch.DefaultLimits()
	l.MaxBatchBytes = n.cfg.MaxBatchBytes
	l.MaxRecordBytes = n.cfg.MaxRecordBytes
	return l
}

// produceLocal appends the batch through the local replica, which leads the
// shard, unless a full disk refuses it; shard.Replicas.Produce returns once the
// entry is committed and applied.
func (n *Node) produceLocal(ctx context.Context, shardID uint64, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	if err := n.diskRefusal(shardID); err != nil {
		return nil, err
	}
	res, err := n.data.Produce(ctx, shardID, req.ProducerId, req.Sequence, req.Batch)
	if err != nil {
		return nil, err
	}
	n.markServed(ctx)
	return &pb.ProduceResponse{BaseOffset: res.Base, RecordCount: res.Count, Duplicate: res.Duplicate}, nil
}

func (s *logService) Fetch(ctx context.Context, req *pb.FetchRequest) (*pb.FetchResponse, error) {
	return s.n.fetch(ctx, req)
}

func (n *Node) fetch(ctx context.Context, req *pb.FetchRequest) (*pb.FetchResponse, error) {
	v, _, sh, err := n.resolve(ctx, req.Topic, req.Shard)
	if err != nil {
		return nil, err
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = defaultFetchBytes
	}
	maxBytes = min(maxBytes, n.cfg.MaxFetchBytes)
	maxWait := pollWait(ctx, time.Duration(req.MaxWaitMs)*time.Millisecond, n.cfg.MaxFetchWait)
	if req.Local {
		if _, ok := n.hostedReplica(sh.ShardID); !ok {
			return nil, status.Errorf(codes.FailedPrecondition, "node %d has no replica of %s/%d", n.id.NodeID, req.Topic, req.Shard)
		}
		return n.fetchLocal(ctx, sh.ShardID, req.Offset, maxBytes, maxWait, true)
	}
	return routed(ctx, req.Hops, true, func(attempt int) (*pb.FetchResponse, error) {
		t, err := n.route(v, sh, req.Hops, attempt)
		if err != nil {
			return nil, err
		}
		if t.local {
			return n.fetchLocal(ctx, sh.ShardID, req.Offset, maxBytes, maxWait, false)
		}
		fwd := &pb.FetchRequest{Topic: req.Topic, Shard: req.Shard, Offset: req.Offset, MaxBytes: uint32(maxBytes),
			MaxWaitMs: uint32(maxWait / time.Millisecond), Hops: req.Hops + 1}
		var md metadata.MD
		var resp *pb.FetchResponse
		err = n.forward(ctx, t.addr, maxWait+n.forwardTimeout(req.Hops), func(ctx context.Context, conn *grpc.ClientConn) (err error) {
			resp, err = pb.NewLogClient(conn).Fetch(ctx, fwd, grpc.Header(&md))
			return err
		})
		n.learnLeader(sh.ShardID, md, err)
		return resp, err
	})
}

// fetchLocal reads from the local replica; local is true when the client asked
// for this node's replica by name, false when it was picked as the leader
// (then a read past the applied end first confirms the commit point).
func (n *Node) fetchLocal(ctx context.Context, shardID, offset uint64, maxBytes int, maxWait time.Duration, local bool) (*pb.FetchResponse, error) {
	batches, st, err := n.data.Read(ctx, shardID, offset, maxBytes, maxWait, !local)
	if err != nil {
		return nil, err
	}
	n.markServed(ctx)
	resp := &pb.FetchResponse{LogStartOffset: st.LogStart, NextOffset: st.NextOffset, Batches: make([]*pb.StoredBatch, len(batches))}
	for i, b := range batches {
		resp.Batches[i] = &pb.StoredBatch{BaseOffset: b.Base, Data: b.Data}
	}
	return resp, nil
}

// Subscribe streams batches from an offset: a loop of long-poll fetches whose pace
// is set by the stream's flow control (Send blocks when the client is slow).
func (s *logService) Subscribe(req *pb.SubscribeRequest, stream grpc.ServerStreamingServer[pb.FetchResponse]) error {
	n := s.n
	ctx := stream.Context()
	offset := req.Offset
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		resp, err := n.fetch(fctx, &pb.FetchRequest{Topic: req.Topic, Shard: req.Shard, Offset: offset,
			MaxBytes: req.MaxBytes, MaxWaitMs: uint32(min(n.cfg.MaxFetchWait, 5*time.Second) / time.Millisecond)})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if retryable(err, true) {
				continue
			}
			return err
		}
		if len(resp.Batches) == 0 {
			continue
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		last := resp.Batches[len(resp.Batches)-1]
		info, err := batch.ReadHeader(last.Data) // CRC-checked when it was applied
		if err != nil {
			return status.Errorf(codes.DataLoss, "subscribe %s/%d: stored batch at %d: %v", req.Topic, req.Shard, last.BaseOffset, err)
		}
		offset = last.BaseOffset + uint64(info.Count)
	}
	return nil
}

// shardStatus reports this node's view of the given shards.
func (n *Node) shardStatus(ids []uint64) *pb.ShardStatusResponse {
	resp := &pb.ShardStatusResponse{NodeId: n.id.NodeID}
	for _, id := range ids {
		ss := &pb.ShardStatus{ShardId: id}
		if _, ok := n.hostedReplica(id); ok {
			ss.Hosted = true
			if leader, _, valid, err := n.nh.GetLeaderID(id); err == nil && valid {
				ss.LeaderReplicaId = leader
			}
			if st, ok, err := n.store.State(id); err == nil && ok {
				ss.FirstOffset, ss.NextOffset, ss.AppliedIndex = st.LogStart, st.NextOffset, st.AppliedIndex
			}
		}
		resp.Shards = append(resp.Shards, ss)
	}
	return resp
}

// shardView is what collectStatus learns about one shard.
type shardView struct {
	leader      meta.NodeID
	first, next uint64
	err         string
}

// collectStatus asks every node holding a replica of the given shards for its view,
// in parallel, and takes each shard's leader and offsets from the node whose replica
// leads it.
func (n *Node) collectStatus(ctx context.Context, v *meta.State, shards []meta.Shard) map[uint64]shardView {
	byNode := map[meta.NodeID][]uint64{}
	replicaOf := map[uint64]map[meta.NodeID]uint64{}
	for _, sh := range shards {
		replicaOf[sh.ShardID] = map[meta.NodeID]uint64{}
		for _, r := range sh.Replicas {
			byNode[r.NodeID] = append(byNode[r.NodeID], sh.ShardID)
			replicaOf[sh.ShardID][r.NodeID] = r.ReplicaID
		}
	}
	type answer struct {
		node meta.NodeID
		resp *pb.ShardStatusResponse
		err  error
	}
	answers := make(chan answer, len(byNode))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for id, ids := range byNode {
		go func() {
			if uint64(id) == n.id.NodeID {
				answers <- answer{node: id, resp: n.shardStatus(ids)}
				return
			}
			nd, ok := v.Nodes[id]
			if !ok {
				answers <- answer{node: id, err: fmt.Errorf("node %d unknown", uint64(id))}
				return
			}
			if !n.peerAnswering(id) {
				// A hung node would hold the answer until the timeout.
				answers <- answer{node: id, err: fmt.Errorf("node %d is %s", uint64(id), n.nodeState(id))}
				return
			}
			conn, err := n.dial(nd.ClientAddr)
			if err != nil {
				answers <- answer{node: id, err: err}
				return
			}
			resp, err := pb.NewClusterClient(conn).ShardStatus(cctx, &pb.ShardStatusRequest{ShardIds: ids})
			answers <- answer{node: id, resp: resp, err: err}
		}()
	}
	out := map[uint64]shardView{}
	best := map[uint64]uint64{} // highest next offset seen from a non-leader, used when no leader answers
	for range byNode {
		a := <-answers
		if a.err != nil {
			continue
		}
		for _, ss := range a.resp.Shards {
			if !ss.Hosted {
				continue
			}
			sv := out[ss.ShardId]
			if ss.LeaderReplicaId != 0 && ss.LeaderReplicaId == replicaOf[ss.ShardId][a.node] {
				sv = shardView{leader: a.node, first: ss.FirstOffset, next: ss.NextOffset}
			} else if sv.leader == 0 && ss.NextOffset >= best[ss.ShardId] {
				best[ss.ShardId] = ss.NextOffset
				sv.first, sv.next = ss.FirstOffset, ss.NextOffset
			}
			out[ss.ShardId] = sv
		}
	}
	for _, sh := range shards {
		sv := out[sh.ShardID]
		if sv.leader == 0 {
			sv.err = "no leader reachable; offsets from the most advanced reachable replica"
			out[sh.ShardID] = sv
		}
	}
	return out
}
