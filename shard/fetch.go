package shard

import (
	"context"
	"fmt"
	"time"

	"shardlog/ids"
	"shardlog/segment"
)

// Fetch reads applied data of the shard from the local replica: the batches
// from the one containing offset, up to maxBytes (at least one). When offset
// is NextOffset it waits on hub up to maxWait (or until ctx ends) for new
// data, then returns what arrived, or no batches. An offset below LogStart
// or above NextOffset gives ErrOffsetOutOfRange, wrapped with the valid range.
// While the replica replaces its data with a snapshot it gives ErrRecovering:
// what it would read then is neither the old log nor the new one.
func Fetch(ctx context.Context, st *segment.Store, hub *Hub, shard ids.ShardID, offset ids.Offset, maxBytes int, maxWait time.Duration) ([]segment.StoredBatch, segment.ShardState, error) {
	var deadline <-chan time.Time
	for {
		wake := hub.Wait(shard) // before reading the state: no apply is missed
		gen := hub.importGen(shard)
		batches, state, err, done := readAt(st, shard, offset, maxBytes)
		if gen%2 == 1 || hub.importGen(shard) != gen {
			return nil, segment.ShardState{}, fmt.Errorf("%w: shard %d", ErrRecovering, shard)
		}
		if done || maxWait <= 0 {
			return batches, state, err
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

// readAt is one read of Fetch: done is false when offset is the end of the log
// and there is nothing to return yet.
func readAt(st *segment.Store, shard ids.ShardID, offset ids.Offset, maxBytes int) (batches []segment.StoredBatch, state segment.ShardState, err error, done bool) {
	state, ok, err := st.State(shard)
	if err != nil {
		return nil, segment.ShardState{}, err, true
	}
	if !ok {
		return nil, segment.ShardState{}, fmt.Errorf("%w: shard %d", ErrShardNotFound, shard), true
	}
	if offset < state.LogStart || offset > state.NextOffset {
		return nil, state, outOfRange(shard, offset, state), true
	}
	if offset == state.NextOffset {
		return nil, state, nil, false
	}
	batches, err = st.Read(shard, offset, maxBytes)
	if err != nil {
		return nil, state, err, true
	}
	if len(batches) == 0 || batches[0].Base > offset {
		// Retention dropped the offset after the state was read.
		if now, _, err := st.State(shard); err == nil {
			state = now
		}
		return nil, state, outOfRange(shard, offset, state), true
	}
	return batches, state, nil, true
}

func outOfRange(shard ids.ShardID, offset ids.Offset, st segment.ShardState) error {
	return fmt.Errorf("%w: offset %d, shard %d holds [%d, %d]", ErrOffsetOutOfRange, offset, shard, st.LogStart, st.NextOffset)
}
