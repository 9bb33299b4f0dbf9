package segment

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"shardlog/batch"
	"shardlog/ids"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultCacheBytes is the block cache size when Options.CacheBytes is 0.
const DefaultCacheBytes = 64 << 20

// Options configures Open.
type Options struct {
	// FS is the filesystem; nil means the real disk. Tests use vfs.NewMem().
	FS vfs.FS
	// CacheBytes is the Pebble block cache size; 0 means DefaultCacheBytes.
	CacheBytes int64
	// Logger receives Pebble's messages; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the per-node Pebble DB holding every shard replica's records and
// metadata. All methods are safe for concurrent use.
type Store struct {
	db  *pebble.DB
	log *slog.Logger
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "segment")
	size := o.CacheBytes
	if size <= 0 {
		size = DefaultCacheBytes
	}
	cache := pebble.NewCache(size)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:                 o.FS,
		Cache:              cache,
		Logger:             pebbleLogger{log},
		FormatMajorVersion: pebble.FormatNewest,
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	return &Store{db: db, log: log}, nil
}

// Close closes the DB. Close it only after every user (dragonboat's
// NodeHost included) has stopped.
func (s *Store) Close() error { return s.db.Close() }

var (
	noSync   = pebble.NoSync
	withSync = pebble.Sync
)

func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// State returns the shard's state; ok is false when the shard has none.
func (s *Store) State(shard ids.ShardID) (ShardState, bool, error) {
	v, ok, err := s.get(stateKey(shard))
	if err != nil || !ok {
		return ShardState{}, false, err
	}
	st, err := decodeState(v)
	return st, err == nil, err
}

// Producer returns a producer's idempotence state on the shard.
func (s *Store) Producer(shard ids.ShardID, pid uint64) (ProducerState, bool, error) {
	v, ok, err := s.get(producerKey(shard, pid))
	if err != nil || !ok {
		return ProducerState{}, false, err
	}
	st, err := decodeProducer(v)
	return st, err == nil, err
}

// WriteBatch collects writes to apply atomically. It is not readable and not
// safe for concurrent use.
type WriteBatch struct {
	b *pebble.Batch
}

// NewWriteBatch starts an atomic batch of writes.
func (s *Store) NewWriteBatch() *WriteBatch { return &WriteBatch{b: s.db.NewBatch()} }

// PutRecordBatch stores a batch at its base offset; data is copied.
func (w *WriteBatch) PutRecordBatch(shard ids.ShardID, base ids.Offset, data []byte) {
	_ = w.b.Set(recordKey(shard, base), data, nil) // errors only on a committed batch
}

// PutProducer stores a producer's idempotence state.
func (w *WriteBatch) PutProducer(shard ids.ShardID, pid uint64, st ProducerState) {
	_ = w.b.Set(producerKey(shard, pid), encodeProducer(st), nil)
}

// PutState stores the shard's state.
func (w *WriteBatch) PutState(shard ids.ShardID, st ShardState) {
	_ = w.b.Set(stateKey(shard), encodeState(st), nil)
}

// DeleteRecordBatchesBefore deletes every record batch with a base offset
// below base, with one range delete. It also covers batches put earlier in
// this WriteBatch.
func (w *WriteBatch) DeleteRecordBatchesBefore(shard ids.ShardID, base ids.Offset) {
	_ = w.b.DeleteRange(recordKey(shard, 0), recordKey(shard, base), nil)
}

// Commit applies the batch, with an fsync of the WAL when sync is true.
// Close the batch afterwards.
func (w *WriteBatch) Commit(sync bool) error {
	opts := noSync
	if sync {
		opts = withSync
	}
	if err := w.b.Commit(opts); err != nil {
		return fmt.Errorf("segment: commit: %w", err)
	}
	return nil
}

// Close releases the batch. Uncommitted writes are dropped.
func (w *WriteBatch) Close() { _ = w.b.Close() }

// StoredBatch is one batch as stored, at its base offset.
type StoredBatch struct {
	Base ids.Offset
	Data []byte
}

// recordIter returns an iterator over the shard's record keys.
func (s *Store) recordIter(r pebble.Reader, shard ids.ShardID) (*pebble.Iterator, error) {
	lo, hi := recordBounds(shard)
	return r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
}

// seekBatch positions it at the batch that contains offset, else at the
// first batch after it. It returns false when there is none.
func seekBatch(it *pebble.Iterator, shard ids.ShardID, offset ids.Offset) (bool, error) {
	if !it.SeekLT(append(recordKey(shard, offset), 0)) {
		return it.First(), nil
	}
	base, h, err := iterBatch(it)
	if err != nil {
		return false, err
	}
	if base+ids.Offset(h.Count) > offset {
		return true, nil
	}
	return it.Next(), nil
}

// iterBatch decodes the base and header of the batch under it.
func iterBatch(it *pebble.Iterator) (ids.Offset, batch.Info, error) {
	base, err := recordBase(it.Key())
	if err != nil {
		return 0, batch.Info{}, err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return 0, batch.Info{}, err
	}
	h, err := batch.ReadHeader(v)
	if err != nil {
		return 0, batch.Info{}, fmt.Errorf("stored batch %d: %w", base, err)
	}
	return base, h, nil
}

// Read returns batches starting with the one that contains offset from (or
// the first batch after it), in order, while their total stays within
// maxBytes; the first batch is always returned if any exists at or after
// from, whatever its size. The returned data is owned by the caller.
func (s *Store) Read(shard ids.ShardID, from ids.Offset, maxBytes int) (_ []StoredBatch, err error) {
	it, err := s.recordIter(s.db, shard)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	valid, err := seekBatch(it, shard, from)
	if err != nil {
		return nil, err
	}
	var out []StoredBatch
	total := 0
	for ; valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && total+len(v) > maxBytes {
			break
		}
		base, err := recordBase(it.Key())
		if err != nil {
			return nil, err
		}
		out = append(out, StoredBatch{Base: base, Data: bytes.Clone(v)})
		if total += len(v); total >= maxBytes {
			break
		}
	}
	return out, it.Error()
}

// Locate returns the base and header information of the batch that contains
// offset, or of the first batch after it; found is false when there is none.
// It reads no payload and checks no CRC.
func (s *Store) Locate(shard ids.ShardID, offset ids.Offset) (base ids.Offset, info batch.Info, found bool, err error) {
	it, err := s.recordIter(s.db, shard)
	if err != nil {
		return 0, batch.Info{}, false, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	valid, err := seekBatch(it, shard, offset)
	if err != nil || !valid {
		return 0, batch.Info{}, false, errors.Join(err, it.Error())
	}
	base, h, err := iterBatch(it)
	if err != nil {
		return 0, batch.Info{}, false, err
	}
	return base, h, true, nil
}

// DeleteShard removes every key of the shard and compacts the range so the
// disk space is actually freed.
// A shard without keys is left alone: compacting a range flushes the
// memtable, which would make starting many new replicas slow.
func (s *Store) DeleteShard(shard ids.ShardID) error {
	lo, hi := shardBounds(shard)
	empty, err := s.rangeEmpty(lo, hi)
	if err != nil || empty {
		return err
	}
	if err := s.db.DeleteRange(lo, hi, withSync); err != nil {
		return fmt.Errorf("segment: delete shard %d: %w", shard, err)
	}
	if err := s.db.Compact(context.Background(), lo, hi, false); err != nil {
		return fmt.Errorf("segment: compact shard %d: %w", shard, err)
	}
	return nil
}

func (s *Store) rangeEmpty(lo, hi []byte) (_ bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	return !it.First(), it.Error()
}

// Shards returns the IDs of the shards that have a state key, ascending.
func (s *Store) Shards() (_ []ids.ShardID, err error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var out []ids.ShardID
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < 8 {
			valid = it.Next()
			continue
		}
		shard := shardOf(k)
		if valid = it.SeekGE(stateKey(shard)); valid && bytes.Equal(it.Key(), stateKey(shard)) {
			out = append(out, shard)
		}
		if shard == ^ids.ShardID(0) {
			break
		}
		valid = it.SeekGE(shardPrefix(shard+1, 0)[:8])
	}
	return out, it.Error()
}

func shardOf(key []byte) ids.ShardID { return ids.ShardID(binary.BigEndian.Uint64(key)) }

// Sync makes every committed write durable by fsyncing the shared WAL.
func (s *Store) Sync() error {
	if err := s.db.LogData(nil, withSync); err != nil {
		return fmt.Errorf("segment: sync: %w", err)
	}
	return nil
}

// DiskUsage returns the bytes the DB uses on disk (WAL and tables).
func (s *Store) DiskUsage() uint64 { return s.db.Metrics().DiskSpaceUsage() }

// pebbleLogger sends Pebble's log lines to slog. Pebble's info lines are
// chatty (every flush and compaction), so they go out at debug level.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic("segment: pebble: " + msg)
}
