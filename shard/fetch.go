package shard

import (
	"context"
	"fmt"
	"time"

	"shardlog/segment"
)

// Fetch reads applied data of the shard from the local replica: the batches
// from the one containing offset, up to maxBytes (at least one). When offset
// is NextOffset it waits on hub up to maxWait (or until ctx ends) for new
// data, then returns what arrived, or no batches. An offset below LogStart
// or above NextOffset gives ErrOffsetOutOfRange, wrapped with the valid range.
func Fetch(ctx context.Context, st *segment.Store, hub *Hub, shard, offset uint64, maxBytes int, maxWait time.Duration) (batches []segment.StoredBatch, state segment.ShardState, err error) {
	var deadline <-chan time.Time
	for {
		wake := hub.Wait(shard) // before reading the state: no apply is missed
		state, ok, err := st.State(shard)
		if err != nil {
			return nil, segment.ShardState{}, err
		}
		if !ok {
			return nil, segment.ShardState{}, fmt.Errorf("%w: shard %d", ErrShardNotFound, shard)
		}
		if offset < state.LogStart || offset > state.NextOffset {
			return nil, state, outOfRange(shard, offset, state)
		}
		if offset < state.NextOffset {
			batches, err := st.Read(shard, offset, maxBytes)
			if err != nil {
				return nil, state, err
			}
			if len(batches) == 0 || batches[0].Base > offset {
				// Retention dropped the offset after the state was read.
				if now, _, err := st.State(shard); err == nil {
					state = now
				}
				return nil, state, outOfRange(shard, offset, state)
			}
			return batches, state, nil
		}
		if maxWait <= 0 {
			return nil, state, nil
		}
		if deadline == nil {
			t := time.NewTimer(maxWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-wake:
		case <-deadline:
			return nil, state, nil
		case <-ctx.Done():
			return nil, state, ctx.Err()
		}
	}
}

func outOfRange(shard, offset uint64, st segment.ShardState) error {
	return fmt.Errorf("%w: offset %d, shard %d holds [%d, %d]", ErrOffsetOutOfRange, offset, shard, st.LogStart, st.NextOffset)
}
