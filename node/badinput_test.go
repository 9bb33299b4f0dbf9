package node_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/node"
	"shardlog/node/nodetest"
	pb "shardlog/proto/shardlogv1"
)

func TestClusterBadInputGetsClearErrors(t *testing.T) {
	c := nodetest.Start(t, 3, func(i int, cfg *node.Config) { cfg.MaxBatchBytes = 1 << 20; cfg.MaxRecordBytes = 64 << 10 })
	ctx := ctxT(t, 60*time.Second)
	cl := c.Client(0)
	admin := pb.NewAdminClient(rawConn(t, c.Addr(1)))
	logc := pb.NewLogClient(rawConn(t, c.Addr(2)))
	if _, err := cl.CreateTopic(ctx, &pb.TopicSpec{Name: "ok", Shards: 2, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	good, err := batch.Encode(nil, []batch.Record{{Value: []byte("v")}}, batch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 0xff
	bigRecord, err := batch.Encode(nil, []batch.Record{{Value: bytes.Repeat([]byte("x"), 100<<10)}}, batch.CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	// Above --max-batch-bytes: refused by the handler with a message naming the limit.
	tooBig := bytes.Repeat([]byte{1}, 3<<19)
	// Above the gRPC message limit (max batch + 1 MiB): refused by gRPC itself.
	huge := bytes.Repeat([]byte{1}, 3<<20)

	cases := []struct {
		name    string
		call    func() error
		code    codes.Code
		message string
	}{
		{"topic name with a slash", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "a/b", Shards: 1, ReplicationFactor: 1}})
			return err
		}, codes.InvalidArgument, "a/b"},
		{"empty topic name", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "", Shards: 1, ReplicationFactor: 1}})
			return err
		}, codes.InvalidArgument, "name"},
		{"topic name too long", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: strings.Repeat("n", 201), Shards: 1, ReplicationFactor: 1}})
			return err
		}, codes.InvalidArgument, "200"},
		{"zero shards", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "z", Shards: 0, ReplicationFactor: 1}})
			return err
		}, codes.InvalidArgument, "shard count 0"},
		{"too many shards", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "z", Shards: 5000, ReplicationFactor: 1}})
			return err
		}, codes.InvalidArgument, "shard count 5000"},
		{"replication factor zero", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "z", Shards: 1, ReplicationFactor: 0}})
			return err
		}, codes.InvalidArgument, "replication"},
		{"replication factor above live nodes", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "z", Shards: 1, ReplicationFactor: 4}})
			return err
		}, codes.FailedPrecondition, "live nodes"},
		{"unknown compression", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "z", Shards: 1, ReplicationFactor: 1, Compression: "lz5"}})
			return err
		}, codes.InvalidArgument, "lz5"},
		{"topic exists", func() error {
			_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "ok", Shards: 1, ReplicationFactor: 1}})
			return err
		}, codes.AlreadyExists, "ok"},
		{"delete unknown topic", func() error {
			_, err := admin.DeleteTopic(ctx, &pb.DeleteTopicRequest{Name: "nope"})
			return err
		}, codes.NotFound, "nope"},
		{"produce to unknown topic", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "nope", Batch: good})
			return err
		}, codes.NotFound, "nope"},
		{"produce to unknown shard", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok", Shard: 2, Batch: good})
			return err
		}, codes.NotFound, "shard 2"},
		{"produce a corrupt batch", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok", Batch: corrupt})
			return err
		}, codes.InvalidArgument, "crc"},
		{"produce garbage", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok", Batch: []byte("hello")})
			return err
		}, codes.InvalidArgument, ""},
		{"produce an empty batch", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok"})
			return err
		}, codes.InvalidArgument, "empty"},
		{"produce an oversized record", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok", Batch: bigRecord})
			return err
		}, codes.InvalidArgument, ""},
		{"produce an oversized batch", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok", Batch: tooBig})
			return err
		}, codes.InvalidArgument, "max-batch-bytes"},
		{"produce a message above the gRPC limit", func() error {
			_, err := logc.Produce(ctx, &pb.ProduceRequest{Topic: "ok", Batch: huge})
			return err
		}, codes.ResourceExhausted, "larger than max"},
		{"fetch past the end", func() error {
			_, err := logc.Fetch(ctx, &pb.FetchRequest{Topic: "ok", Shard: 1, Offset: 1000})
			return err
		}, codes.OutOfRange, ""},
		{"fetch from unknown topic", func() error {
			_, err := logc.Fetch(ctx, &pb.FetchRequest{Topic: "nope"})
			return err
		}, codes.NotFound, "nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("got %v (%q), want %v", st.Code(), st.Message(), tc.code)
			}
			if !strings.Contains(strings.ToLower(st.Message()), strings.ToLower(tc.message)) {
				t.Fatalf("message %q does not mention %q", st.Message(), tc.message)
			}
		})
	}

	// Nothing half-created: only the one good topic exists, and its shards are empty.
	topics, err := cl.ListTopics(ctx)
	if err != nil || len(topics) != 1 || topics[0].Spec.Name != "ok" {
		t.Fatalf("topics after bad input: %v (%v)", topics, err)
	}
	info, err := cl.DescribeTopic(ctx, "ok", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range info.Shards {
		if sh.NextOffset != 0 {
			t.Fatalf("shard %d has %d records after only bad produces", sh.Index, sh.NextOffset)
		}
	}
}

func TestNodeJoinAddressThatIsNotShardlogFails(t *testing.T) {
	// An HTTP server stands where a shardlog node should be.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })

	ports := nodetest.FreePorts(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = node.Start(ctx, node.Config{
		Dir: filepath.Join(t.TempDir(), "n"), Port: ports[0], RaftPort: ports[1], GossipPort: ports[2],
		Join: []string{lis.Addr().String()}, LogDBMemory: "tiny", GossipFast: true,
	})
	if err == nil || !strings.Contains(err.Error(), "not a shardlog node") {
		t.Fatalf("join an HTTP server: %v, want 'not a shardlog node'", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("took %v to refuse", time.Since(start))
	}
}

// --max-topics is enforced by the meta group, with ResourceExhausted.
func TestClusterMaxTopicsIsEnforced(t *testing.T) {
	c := nodetest.Start(t, 1, func(i int, cfg *node.Config) { cfg.MaxTopics = 1 })
	ctx := ctxT(t, 30*time.Second)
	admin := pb.NewAdminClient(rawConn(t, c.Addr(0)))
	if _, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "one", Shards: 1, ReplicationFactor: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := admin.CreateTopic(ctx, &pb.CreateTopicRequest{Spec: &pb.TopicSpec{Name: "two", Shards: 1, ReplicationFactor: 1}})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "maximum of 1 topics") {
		t.Fatalf("second topic: %v, want ResourceExhausted naming the limit", err)
	}
}
