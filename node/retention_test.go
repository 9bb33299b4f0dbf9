package node_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/node/nodetest"
	pb "shardlog/proto/shardlogv1"
)

// Batches older than the topic's retention are dropped by every replica (the leader
// proposes the truncation); fetching below the new start is OutOfRange.
func TestClusterRetentionDropsOldBatches(t *testing.T) {
	c := nodetest.Start(t, 3) // nodetest checks retention every second
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Client(0).CreateTopic(ctx, &pb.TopicSpec{Name: "ret", Shards: 1, ReplicationFactor: 3, RetentionMs: 60_000}); err != nil {
		t.Fatal(err)
	}
	logc := pb.NewLogClient(rawConn(t, c.Addr(0)))
	old := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 3 {
		b, err := batch.Encode(nil, []batch.Record{{Value: []byte("old"), Timestamp: old}, {Value: []byte("old"), Timestamp: old}}, batch.CodecNone)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ret", Batch: b, ProducerId: 1, Sequence: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ret", Batch: encode(t, "new"), ProducerId: 1, Sequence: 3})
	if err != nil || resp.BaseOffset != 6 {
		t.Fatalf("new batch: %+v %v", resp, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := range 3 {
		local := pb.NewLogClient(rawConn(t, c.Addr(i)))
		for {
			f, err := local.Fetch(ctx, &pb.FetchRequest{Topic: "ret", Offset: 6, Local: true})
			if err == nil && f.LogStartOffset == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: log start %v (%v), want 6", i, f.GetLogStartOffset(), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := logc.Fetch(ctx, &pb.FetchRequest{Topic: "ret", Offset: 0}); status.Code(err) != codes.OutOfRange {
		t.Fatalf("fetch below log start: %v, want OutOfRange", err)
	}
}
