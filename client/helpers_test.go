package client

import (
	"context"
	"testing"
	"time"

	"shardlog/client/clienttest"
	"shardlog/proto/shardlogv1"
)

// startFake starts a fake server with one topic and a client connected to it.
func startFake(t *testing.T, seed uint64, topic string, shards uint32, compression string) (*clienttest.Server, *Client) {
	t.Helper()
	srv := clienttest.NewServer(seed)
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := Dial(t.Context(), []string{addr}, Options{DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if topic != "" {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := c.CreateTopic(ctx, &shardlogv1.TopicSpec{
			Name: topic, Shards: shards, ReplicationFactor: 1, Compression: compression,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return srv, c
}
