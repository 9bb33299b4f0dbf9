package node_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/node"
	"shardlog/node/nodetest"
	pb "shardlog/proto/shardlogv1"
)

func encode(t *testing.T, vals ...string) []byte {
	t.Helper()
	recs := make([]batch.Record, len(vals))
	for i, v := range vals {
		recs[i] = batch.Record{Value: []byte(v), Timestamp: time.Now().UnixMilli()}
	}
	b, err := batch.Encode(nil, recs, batch.CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A retried produce (same producer and sequence) is applied once, through any node,
// and answers with the first offset; a gap in sequences is refused as retryable.
func TestClusterRetriedProduceAppliesOnce(t *testing.T) {
	c := nodetest.Start(t, 3)
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Client(0).CreateTopic(ctx, &pb.TopicSpec{Name: "idem", Shards: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	batch := encode(t, "a", "b", "c")
	var first *pb.ProduceResponse
	for i := range 3 {
		logc := pb.NewLogClient(rawConn(t, c.Addr(i)))
		resp, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "idem", ProducerId: 42, Sequence: 0, Batch: batch})
		if err != nil {
			t.Fatalf("produce via node %d: %v", i, err)
		}
		if i == 0 {
			first = resp
			if resp.Duplicate || resp.BaseOffset != 0 || resp.RecordCount != 3 {
				t.Fatalf("first produce: %+v", resp)
			}
			continue
		}
		if !resp.Duplicate || resp.BaseOffset != first.BaseOffset {
			t.Fatalf("retry via node %d: %+v, want duplicate of offset %d", i, resp, first.BaseOffset)
		}
	}
	logc := pb.NewLogClient(rawConn(t, c.Addr(1)))
	_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "idem", ProducerId: 42, Sequence: 5, Batch: batch})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("sequence gap: %v, want Aborted", err)
	}
	resp, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "idem", ProducerId: 42, Sequence: 1, Batch: encode(t, "d")})
	if err != nil || resp.BaseOffset != 3 || resp.Duplicate {
		t.Fatalf("next sequence: %+v, %v", resp, err)
	}
	f, err := logc.Fetch(ctx, &pb.FetchRequest{Topic: "idem", Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	if f.NextOffset != 4 || len(f.Batches) != 2 {
		t.Fatalf("log holds next offset %d in %d batches, want 4 in 2", f.NextOffset, len(f.Batches))
	}
}

// Subscribe streams what is appended after it started, through a node that does
// not lead the shard; a long-poll fetch at the end of the log waits for data.
func TestClusterSubscribeAndLongPoll(t *testing.T) {
	c := nodetest.Start(t, 3)
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Client(0).CreateTopic(ctx, &pb.TopicSpec{Name: "tail", Shards: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	logc := pb.NewLogClient(rawConn(t, c.Addr(2)))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := logc.Subscribe(sctx, &pb.SubscribeRequest{Topic: "tail", Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan *pb.FetchResponse, 1)
	go func() {
		resp, err := pb.NewLogClient(rawConn(t, c.Addr(1))).Fetch(ctx, &pb.FetchRequest{Topic: "tail", Offset: 0, MaxWaitMs: 10000})
		if err != nil {
			t.Errorf("long poll: %v", err)
		}
		waited <- resp
	}()
	// A long poll that asks to wait longer than its own deadline answers empty just
	// before the deadline instead of failing with DeadlineExceeded, on the node the
	// client called and through a forwarding node (node 2 may not lead the shard).
	for _, i := range []int{0, 2} {
		pctx, pcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		resp, err := pb.NewLogClient(rawConn(t, c.Addr(i))).Fetch(pctx, &pb.FetchRequest{Topic: "tail", Offset: 0, MaxWaitMs: 30000})
		pcancel()
		if err != nil || len(resp.GetBatches()) != 0 {
			t.Fatalf("long poll past its deadline via node %d: %v, %v; want an empty answer", i, resp, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	prod := pb.NewLogClient(rawConn(t, c.Addr(0)))
	for i := range 5 {
		if _, err := prod.Produce(ctx, &pb.ProduceRequest{Topic: "tail", Batch: encode(t, "x", "y"), ProducerId: 7, Sequence: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case resp := <-waited:
		if resp == nil || len(resp.Batches) == 0 {
			t.Fatalf("long poll returned no data: %v", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return after data arrived")
	}
	got := 0
	for got < 10 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("subscribe after %d records: %v", got, err)
		}
		for _, b := range resp.Batches {
			recs, err := batch.Decode(b.Data)
			if err != nil {
				t.Fatal(err)
			}
			if b.BaseOffset != uint64(got) {
				t.Fatalf("batch at %d, want %d", b.BaseOffset, got)
			}
			got += len(recs)
		}
	}
}

// A fourth node beyond --meta-voters 3 joins the meta group as non-voting, still
// routes requests from its own replica and hosts shard replicas.
func TestClusterFourthNodeJoinsAsNonVoting(t *testing.T) {
	c := nodetest.Start(t, 4, func(i int, cfg *node.Config) { cfg.MetaVoters = 3 })
	ctx := ctxT(t, 60*time.Second)
	cl := c.Client(3)
	cluster, err := cl.DescribeCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, n := range cluster.Nodes {
		if n.MetaVoter {
			voters++
		}
	}
	if len(cluster.Nodes) != 4 || voters != 3 {
		t.Fatalf("%d nodes, %d meta voters; want 4 and 3", len(cluster.Nodes), voters)
	}
	if _, err := cl.CreateTopic(ctx, &pb.TopicSpec{Name: "four", Shards: 4, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	produceN(t, cl, "four", 400, "n4")
	got := readAll(t, c.Client(0), "four")
	total := 0
	for _, offs := range got {
		total += len(offs)
	}
	if total != 400 {
		t.Fatalf("read %d records, want 400", total)
	}
}
