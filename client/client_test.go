package client

import (
	"errors"
	"net"
	"testing"
	"time"

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
