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
	"shardlog/ids"
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
func (n *Node) produceLocal(ctx context.Context, shardID ids.ShardID, req *pb.ProduceRequest) (*pb.ProduceResponse, error) {
	if err := n.diskRefusal(shardID); err != nil {
		return nil, err
	}
	res, err := n.data.Produce(ctx, shardID, req.ProducerId, req.Sequence, req.Batch)
	if err != nil {
		return nil, err
	}
	n.markServed(ctx)
	return &pb.ProduceResponse{BaseOffset: uint64(res.Base), RecordCount: res.Count, Duplicate: res.Duplicate}, nil
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
		return n.fetchLocal(ctx, sh.ShardID, ids.Offset(req.Offset), maxBytes, maxWait, true)
	}
	return routed(ctx, req.Hops, true, func(attempt int) (*pb.FetchResponse, error) {
		t, err := n.route(v, sh, req.Hops, attempt)
		if err != nil {
			return nil, err
		}
		if t.local {
			return n.fetchLocal(ctx, sh.ShardID, ids.Offset(req.Offset), maxBytes, maxWait, false)
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
func (n *Node) fetchLocal(ctx context.Context, shardID ids.ShardID, offset ids.Offset, maxBytes int, maxWait time.Duration, local bool) (*pb.FetchResponse, error) {
	batches, st, err := n.data.Read(ctx, shardID, offset, maxBytes, maxWait, !local)
	if err != nil {
		return nil, err
	}
	n.markServed(ctx)
	resp := &pb.FetchResponse{LogStartOffset: uint64(st.LogStart), NextOffset: uint64(st.NextOffset), Batches: make([]*pb.StoredBatch, len(batches))}
	for i, b := range batches {
		resp.Batches[i] = &pb.StoredBatch{BaseOffset: uint64(b.Base), Data: b.Data}
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

// shardStatus reports this node's view of the given shards (their IDs as the
// ShardStatus request carries them).
func (n *Node) shardStatus(shardIDs []uint64) *pb.ShardStatusResponse {
	resp := &pb.ShardStatusResponse{NodeId: uint64(n.id.NodeID)}
	for _, raw := range shardIDs {
		id := ids.ShardID(raw)
		ss := &pb.ShardStatus{ShardId: raw}
		if _, ok := n.hostedReplica(id); ok {
			ss.Hosted = true
			if leader, ok := n.leaderOf(id); ok {
				ss.LeaderReplicaId = uint64(leader)
			}
			if st, ok, err := n.store.State(id); err == nil && ok {
				ss.FirstOffset, ss.NextOffset, ss.AppliedIndex = uint64(st.LogStart), uint64(st.NextOffset), st.AppliedIndex
			}
		}
		resp.Shards = append(resp.Shards, ss)
	}
	return resp
}

// shardView is what collectStatus learns about one shard.
type shardView struct {
	leader      ids.NodeID
	first, next ids.Offset
	err         string
}

// collectStatus asks every node holding a replica of the given shards for its view,
// in parallel, and takes each shard's leader and offsets from the node whose replica
// leads it.
func (n *Node) collectStatus(ctx context.Context, v *meta.State, shards []meta.Shard) map[ids.ShardID]shardView {
	byNode := map[ids.NodeID][]uint64{} // the shard IDs to ask each node about, as the request carries them
	replicaOf := map[ids.ShardID]map[ids.NodeID]ids.ReplicaID{}
	for _, sh := range shards {
		replicaOf[sh.ShardID] = map[ids.NodeID]ids.ReplicaID{}
		for _, r := range v.Members(sh) {
			byNode[r.NodeID] = append(byNode[r.NodeID], uint64(sh.ShardID))
			replicaOf[sh.ShardID][r.NodeID] = r.ReplicaID
		}
	}
	type answer struct {
		node ids.NodeID
		resp *pb.ShardStatusResponse
		err  error
	}
	answers := make(chan answer, len(byNode))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for id, shardIDs := range byNode {
		go func() {
			if id == n.id.NodeID {
				answers <- answer{node: id, resp: n.shardStatus(shardIDs)}
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
			resp, err := pb.NewClusterClient(conn).ShardStatus(cctx, &pb.ShardStatusRequest{ShardIds: shardIDs})
			answers <- answer{node: id, resp: resp, err: err}
		}()
	}
	out := map[ids.ShardID]shardView{}
	best := map[ids.ShardID]ids.Offset{} // highest next offset seen from a non-leader, used when no leader answers
	for range byNode {
		a := <-answers
		if a.err != nil {
			continue
		}
		for _, ss := range a.resp.Shards {
			if !ss.Hosted {
				continue
			}
			id, first, next := ids.ShardID(ss.ShardId), ids.Offset(ss.FirstOffset), ids.Offset(ss.NextOffset)
			sv := out[id]
			if ss.LeaderReplicaId != 0 && ids.ReplicaID(ss.LeaderReplicaId) == replicaOf[id][a.node] {
				sv = shardView{leader: a.node, first: first, next: next}
			} else if sv.leader == 0 && next >= best[id] {
				best[id] = next
				sv.first, sv.next = first, next
			}
			out[id] = sv
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
