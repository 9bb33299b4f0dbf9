package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"shardlog/proto/shardlogv1"
)

func TestCreateTopicAndWait(t *testing.T) {
	srv, c := startFake(t, 3, "", 0, "")
	info, err := c.CreateTopicAndWait(t.Context(), &shardlogv1.TopicSpec{Name: "t", Shards: 3, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.GetShards()) != 3 {
		t.Fatalf("%d shards", len(info.GetShards()))
	}

	// A shard without a leader holds WaitLed until ctx ends, and the error names it.
	if err := srv.SetLeader("t", 1, 0, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = c.WaitLed(ctx, "t")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "shards [1] without a leader") {
		t.Fatalf("WaitLed with an unled shard: %v", err)
	}

	// Once it has one, WaitLed returns.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = srv.SetLeader("t", 1, 1, "")
	}()
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := c.WaitLed(ctx, "t"); err != nil {
		t.Fatalf("WaitLed after the shard got a leader: %v", err)
	}

	// A topic that does not exist is reported with the server's error.
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.WaitLed(ctx, "missing"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("WaitLed on a missing topic: %v", err)
	}
}
