package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"shardlog/batch"
	"shardlog/client"
	"shardlog/ids"
	"shardlog/segment"
)

// segmentPool is the number of distinct encoded batches the segment baseline cycles
// through.
const segmentPool = 8

// batchRecords returns how many records the client puts in one batch of w: it seals a
// batch when its records reach BatchSize bytes (key, value and a fixed overhead per
// record) or client.DefaultBatchRecords records.
func batchRecords(w Workload, keyLen int) int {
	per := w.RecordSize + keyLen + 24
	n := (w.BatchSize + per - 1) / per
	return max(1, min(n, client.DefaultBatchRecords))
}

// SegmentBaseline measures the segment store alone: batches of w's records, encoded
// with w's codec ahead of time, appended round robin over w.Shards shards with one
// WriteBatch (the batch plus the shard state) and Commit without sync per batch, as
// the shard state machine does, and one Sync at the end. It runs for w.Duration (or
// w.Records records) in a temporary directory under dir.
func SegmentBaseline(ctx context.Context, w Workload, dir string) (*Throughput, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	codec, err := batch.ParseCodec(w.Compression)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	tmp, err := os.MkdirTemp(dir, "shardlog-bench-segment-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)
	store, err := segment.Open(tmp, segment.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer store.Close()

	payload, err := NewPayload(w.RecordSize, w.Compressibility, w.Seed)
	if err != nil {
		return nil, err
	}
	keys := w.Keys.NewGen(w.Seed)
	type encoded struct {
		data         []byte
		count, bytes int
	}
	var pool []encoded
	for range segmentPool {
		now := time.Now()
		var recs []batch.Record
		bytes := 0
		for range batchRecords(w, len(keys.Next())) {
			r := batch.Record{Key: keys.Next(), Value: payload.Next(now), Timestamp: now.UnixMilli()}
			bytes += len(r.Key) + len(r.Value)
			recs = append(recs, r)
		}
		data, err := batch.Encode(nil, recs, codec)
		if err != nil {
			return nil, err
		}
		pool = append(pool, encoded{data: data, count: len(recs), bytes: bytes})
	}

	next := make([]ids.Offset, w.Shards)
	var records, bytes uint64
	start := time.Now()
	deadline := start.Add(w.Duration)
	for i := uint64(0); ctx.Err() == nil; i++ {
		if w.Records > 0 && records >= uint64(w.Records) {
			break
		}
		if w.Records == 0 && i%16 == 0 && time.Now().After(deadline) {
			break
		}
		b := pool[i%segmentPool]
		s := i % uint64(w.Shards)
		id := ids.ShardID(s + 1)
		wb := store.NewWriteBatch()
		wb.PutRecordBatch(id, next[s], b.data)
		wb.PutState(id, segment.ShardState{ReplicaID: 1, AppliedIndex: i + 1, NextOffset: next[s] + ids.Offset(b.count)})
		err := wb.Commit(false)
		wb.Close()
		if err != nil {
			return nil, err
		}
		next[s] += ids.Offset(b.count)
		records += uint64(b.count)
		bytes += uint64(b.bytes)
	}
	if err := store.Sync(); err != nil {
		return nil, err
	}
	elapsed := time.Since(start).Seconds()
	return &Throughput{
		Records: records, Bytes: bytes, Seconds: elapsed,
		RecordsPerSec: rate(records, elapsed), MBPerSec: mb(rate(bytes, elapsed)),
	}, ctx.Err()
}
