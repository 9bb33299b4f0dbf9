package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/proto/shardlogv1"
)

// waitLedPoll is how often WaitLed asks for the topic's shards.
const waitLedPoll = 100 * time.Millisecond

// CreateTopicAndWait creates a topic and returns once every one of its shards has a
// leader that answers for its offsets (see WaitLed), so that the first produce and
// fetch need no retry. It gives up when ctx ends.
func (c *Client) CreateTopicAndWait(ctx context.Context, spec *shardlogv1.TopicSpec) (*shardlogv1.TopicInfo, error) {
	if _, err := c.CreateTopic(ctx, spec); err != nil {
		return nil, err
	}
	return c.WaitLed(ctx, spec.GetName())
}

// WaitLed polls the topic until every shard names a leader and that leader reported
// the shard's offsets, and returns the topic as it was then. When ctx ends first, the
// error names the shards still without one.
func (c *Client) WaitLed(ctx context.Context, topic string) (*shardlogv1.TopicInfo, error) {
	t := time.NewTicker(waitLedPoll)
	defer t.Stop()
	why := "no answer"
	for {
		info, err := c.DescribeTopic(ctx, topic, true)
		switch {
		case err == nil:
			if why = unled(info); why == "" {
				return info, nil
			}
		case ctx.Err() == nil && !cutShort(err): // a call cut short by ctx keeps the reason before it
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: topic %s not led: %s: %w", topic, why, ctx.Err())
		case <-t.C:
		}
	}
}

// cutShort reports a call that ended on its deadline or by cancellation: gRPC's own
// deadline timer may fire a moment before ctx.Err() is set.
func cutShort(err error) bool {
	c := status.Code(err)
	return c == codes.DeadlineExceeded || c == codes.Canceled
}

// unled describes the shards of info without a serving leader, or returns "" when
// every shard has one.
func unled(info *shardlogv1.TopicInfo) string {
	if want := info.GetSpec().GetShards(); uint32(len(info.GetShards())) != want {
		return fmt.Sprintf("%d of %d shards placed", len(info.GetShards()), want)
	}
	var missing []uint32
	for _, s := range info.GetShards() {
		if s.GetLeaderNodeId() == 0 || s.GetStatusError() != "" {
			missing = append(missing, s.GetIndex())
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("shards %v without a leader", missing)
}
