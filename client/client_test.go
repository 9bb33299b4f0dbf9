package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"shardlog/client/clienttest"
	"shardlog/proto/shardlogv1"
)

// deadAddr returns a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestClientDialFailsWithoutServer(t *testing.T) {
	_, err := Dial(t.Context(), []string{deadAddr(t)}, Options{DialTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("want ErrNotConnected, got %v", err)
	}
	if _, err := Dial(t.Context(), nil, Options{}); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("want ErrNoAddress, got %v", err)
	}
}

func TestClientAdminFailsOverToLiveAddress(t *testing.T) {
	srv := clienttest.NewServer(1)
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := Dial(t.Context(), []string{deadAddr(t), addr}, Options{DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.cur.Store(0) // force the first call onto the dead address
	if _, err := c.CreateTopic(t.Context(), &shardlogv1.TopicSpec{Name: "a", Shards: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	topics, err := c.ListTopics(t.Context())
	if err != nil || len(topics) != 1 || topics[0].GetSpec().GetName() != "a" {
		t.Fatalf("list: %v %v", topics, err)
	}
	info, err := c.DescribeTopic(t.Context(), "a", true)
	if err != nil || len(info.GetShards()) != 2 {
		t.Fatalf("describe: %v %v", info, err)
	}
	cl, err := c.DescribeCluster(t.Context())
	if err != nil || len(cl.GetNodes()) != 1 {
		t.Fatalf("cluster: %v %v", cl, err)
	}
	if err := c.DeleteTopic(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// hungLog answers admin calls like the fake server but never answers Produce: a
// paused or partitioned node.
type hungLog struct{ *clienttest.Server }

func (h hungLog) Produce(ctx context.Context, _ *shardlogv1.ProduceRequest) (*shardlogv1.ProduceResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Regression (found by the chaos harness): a producer whose node stopped answering
// got DeadlineExceeded on that node until its delivery timeout, because only
// Unavailable moved calls to the next address.
func TestClientProducerFailsOverFromHungNode(t *testing.T) {
	hungFake, good := clienttest.NewServer(1), clienttest.NewServer(2)
	goodAddr, err := good.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer good.Stop()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	shardlogv1.RegisterAdminServer(gs, hungFake)
	shardlogv1.RegisterLogServer(gs, hungLog{hungFake})
	go gs.Serve(lis)
	defer gs.Stop()

	c, err := Dial(t.Context(), []string{lis.Addr().String(), goodAddr}, Options{DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, addr := range []int{0, 1} {
		c.cur.Store(uint32(addr))
		if _, err := c.CreateTopic(t.Context(), &shardlogv1.TopicSpec{Name: "t", Shards: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	c.cur.Store(0) // the hung node first
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{RequestTimeout: 300 * time.Millisecond, DeliveryTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := p.SendSync(t.Context(), Message{Value: []byte("v")})
	if err != nil || res.Err != nil {
		t.Fatalf("send: %v %v", err, res.Err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to get past the hung node", d)
	}
	if offs, _, err := good.Records("t", 0); err != nil || len(offs) != 1 {
		t.Fatalf("good node holds %v (%v), want one record", offs, err)
	}
	_ = p.Close()
}
