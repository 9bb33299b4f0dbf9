package segment

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"shardlog/batch"
	"shardlog/ids"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t *testing.T) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: vfs.NewMem(), CacheBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// batchOf encodes n records with the given timestamp and value size.
func batchOf(t *testing.T, n int, ts int64, valueSize int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: bytes.Repeat([]byte("x"), valueSize), Timestamp: ts}
	}
	b, err := batch.Encode(nil, recs, batch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fill appends batches of the given record counts to the shard, returning
// their bases; batch i has timestamp 1000*(i+1).
func fill(t *testing.T, s *Store, shard ids.ShardID, counts ...int) []ids.Offset {
	t.Helper()
	st, _, err := s.State(shard)
	if err != nil {
		t.Fatal(err)
	}
	wb := s.NewWriteBatch()
	defer wb.Close()
	var bases []ids.Offset
	for i, n := range counts {
		bases = append(bases, st.NextOffset)
		wb.PutRecordBatch(shard, st.NextOffset, batchOf(t, n, int64(1000*(i+1)), 10))
		st.NextOffset += ids.Offset(n)
	}
	wb.PutState(shard, st)
	if err := wb.Commit(false); err != nil {
		t.Fatal(err)
	}
	return bases
}

func bases(bs []StoredBatch) []ids.Offset {
	var out []ids.Offset
	for _, b := range bs {
		out = append(out, b.Base)
	}
	return out
}

func TestSegmentStoreStateAndProducer(t *testing.T) {
	s := openMem(t)
	if _, ok, err := s.State(1); ok || err != nil {
		t.Fatalf("State of a new shard: ok=%v err=%v", ok, err)
	}
	st := ShardState{ReplicaID: 3, AppliedIndex: 9, NextOffset: 100, LogStart: 40}
	ps := ProducerState{LastSeq: 7, Recent: []SeqOffset{{Seq: 6, Base: 90, Count: 5}, {Seq: 7, Base: 95, Count: 5}}}
	wb := s.NewWriteBatch()
	wb.PutState(1, st)
	wb.PutProducer(1, 42, ps)
	if err := wb.Commit(true); err != nil {
		t.Fatal(err)
	}
	wb.Close()
	got, ok, err := s.State(1)
	if err != nil || !ok || got != st {
		t.Fatalf("State = %+v %v %v, want %+v", got, ok, err, st)
	}
	gp, ok, err := s.Producer(1, 42)
	if err != nil || !ok || !reflect.DeepEqual(gp, ps) {
		t.Fatalf("Producer = %+v %v %v, want %+v", gp, ok, err, ps)
	}
	if _, ok, _ := s.Producer(2, 42); ok {
		t.Fatal("producer state leaked into another shard")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.DiskUsage() == 0 {
		t.Fatal("DiskUsage = 0")
	}
}

func TestSegmentStoreRead(t *testing.T) {
	s := openMem(t)
	fill(t, s, 7, 5, 5, 5, 5) // bases 0, 5, 10, 15; each batch 36+5*13 bytes
	fill(t, s, 8, 1)          // a neighbour that must not show up
	size := len(batchOf(t, 5, 0, 10))
	tests := []struct {
		name     string
		from     ids.Offset
		maxBytes int
		want     []ids.Offset
	}{
		{name: "from start, all", from: 0, maxBytes: 1 << 20, want: []ids.Offset{0, 5, 10, 15}},
		{name: "mid batch", from: 7, maxBytes: 1 << 20, want: []ids.Offset{5, 10, 15}},
		{name: "last offset", from: 19, maxBytes: 1 << 20, want: []ids.Offset{15}},
		{name: "at end", from: 20, maxBytes: 1 << 20, want: nil},
		{name: "beyond end", from: 1000, maxBytes: 1 << 20, want: nil},
		{name: "tiny max still one", from: 0, maxBytes: 1, want: []ids.Offset{0}},
		{name: "zero max still one", from: 3, maxBytes: 0, want: []ids.Offset{0}},
		{name: "exactly two", from: 0, maxBytes: 2 * size, want: []ids.Offset{0, 5}},
		{name: "two and a bit", from: 0, maxBytes: 2*size + 1, want: []ids.Offset{0, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Read(7, tt.from, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(bases(got), tt.want) {
				t.Fatalf("bases = %v, want %v", bases(got), tt.want)
			}
			for _, b := range got {
				if _, err := batch.Check(b.Data); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	base, info, found, err := s.Locate(7, 12)
	if err != nil || !found || base != 10 || info.Count != 5 {
		t.Fatalf("Locate(12) = %d %+v %v %v", base, info, found, err)
	}
	if _, _, found, _ := s.Locate(7, 20); found {
		t.Fatal("Locate at the end found a batch")
	}
}

func TestSegmentStoreDeleteBefore(t *testing.T) {
	s := openMem(t)
	fill(t, s, 1, 3, 3, 3)
	wb := s.NewWriteBatch()
	wb.PutRecordBatch(1, 9, batchOf(t, 2, 5, 1))
	wb.DeleteRecordBatchesBefore(1, 6) // also covers nothing put in this batch at >= 6
	if err := wb.Commit(false); err != nil {
		t.Fatal(err)
	}
	wb.Close()
	got, err := s.Read(1, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ids.Offset{6, 9}; !reflect.DeepEqual(bases(got), want) {
		t.Fatalf("bases after delete = %v, want %v", bases(got), want)
	}
}

func TestSegmentStoreDeleteShardAndShards(t *testing.T) {
	s := openMem(t)
	fill(t, s, 1, 2)
	fill(t, s, 2, 2)
	fill(t, s, ^ids.ShardID(0), 2)
	wb := s.NewWriteBatch()
	wb.PutProducer(5, 1, ProducerState{LastSeq: 1}) // keys but no state
	_ = wb.Commit(false)
	wb.Close()
	got, err := s.Shards()
	if err != nil {
		t.Fatal(err)
	}
	if want := []ids.ShardID{1, 2, ^ids.ShardID(0)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Shards = %v, want %v", got, want)
	}
	if err := s.DeleteShard(2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Shards(); !reflect.DeepEqual(got, []ids.ShardID{1, ^ids.ShardID(0)}) {
		t.Fatalf("Shards after delete = %v", got)
	}
	if bs, _ := s.Read(2, 0, 1<<20); len(bs) != 0 {
		t.Fatal("records survived DeleteShard")
	}
	if bs, _ := s.Read(1, 0, 1<<20); len(bs) != 1 {
		t.Fatal("DeleteShard touched a neighbour")
	}
}

func TestSegmentRetentionPoint(t *testing.T) {
	s := openMem(t)
	// Five batches of one record at bases 0..4 with MaxTimestamp 1000..5000.
	fill(t, s, 1, 1, 1, 1, 1, 1)
	size := int64(len(batchOf(t, 1, 0, 10)))
	tests := []struct {
		name     string
		olderMs  int64
		maxBytes int64
		want     ids.Offset
		wantOK   bool
	}{
		{name: "no limits", want: 0},
		{name: "time keeps all", olderMs: 1000, want: 0},
		{name: "time drops two", olderMs: 2500, want: 2, wantOK: true},
		{name: "time keeps last", olderMs: 99999, want: 4, wantOK: true},
		{name: "size keeps all", maxBytes: 5 * size, want: 0},
		{name: "size keeps three", maxBytes: 3*size + 1, want: 2, wantOK: true},
		{name: "size keeps last", maxBytes: 1, want: 4, wantOK: true},
		{name: "stricter of both: size", olderMs: 1500, maxBytes: 2 * size, want: 3, wantOK: true},
		{name: "stricter of both: time", olderMs: 3500, maxBytes: 4 * size, want: 3, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := s.RetentionPoint(1, tt.olderMs, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("RetentionPoint = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if _, ok, err := s.RetentionPoint(99, 1, 1); ok || err != nil {
		t.Fatalf("empty shard: ok=%v err=%v", ok, err)
	}
}

func TestSegmentSnapshotRoundTrip(t *testing.T) {
	src := openMem(t)
	fill(t, src, 3, 4, 4, 4)
	wb := src.NewWriteBatch()
	wb.PutProducer(3, 77, ProducerState{LastSeq: 2, Recent: []SeqOffset{{Seq: 2, Base: 4, Count: 4}}})
	_ = wb.Commit(false)
	wb.Close()
	fill(t, src, 4, 1)
	snap := src.NewSnapshot()
	fill(t, src, 3, 9) // after the snapshot: must not be exported
	var buf bytes.Buffer
	if err := snap.Export(3, &buf, nil); err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()

	dst := openMem(t)
	fill(t, dst, 3, 50) // stale data that the import must replace
	if err := dst.ImportAs(3, 11, bytes.NewReader(stream), nil); err != nil {
		t.Fatal(err)
	}
	st, ok, err := dst.State(3)
	if err != nil || !ok || st.NextOffset != 12 || st.ReplicaID != 11 {
		t.Fatalf("imported state = %+v %v %v", st, ok, err)
	}
	got, _ := dst.Read(3, 0, 1<<20)
	want, _ := src.Read(3, 0, 1<<20)
	if !reflect.DeepEqual(got, want[:3]) {
		t.Fatalf("imported batches %v, want %v", bases(got), bases(want[:3]))
	}
	if p, ok, _ := dst.Producer(3, 77); !ok || p.LastSeq != 2 {
		t.Fatalf("producer not imported: %+v", p)
	}
	if sh, _ := dst.Shards(); !reflect.DeepEqual(sh, []ids.ShardID{3}) {
		t.Fatalf("import wrote other shards: %v", sh)
	}

	// Import under a different shard ID keeps the replica ID when asked to.
	if err := dst.Import(9, bytes.NewReader(stream), nil); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := dst.State(9); st.ReplicaID != 0 || st.NextOffset != 12 {
		t.Fatalf("Import state = %+v", st)
	}
}

func TestSegmentSnapshotCorruptAndStopped(t *testing.T) {
	src := openMem(t)
	fill(t, src, 1, 2, 2)
	snap := src.NewSnapshot()
	defer snap.Close()
	var buf bytes.Buffer
	if err := snap.Export(1, &buf, nil); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	closed := make(chan struct{})
	close(closed)
	if err := snap.Export(1, io.Discard, closed); !errors.Is(err, ErrStopped) {
		t.Fatalf("Export with stop closed = %v", err)
	}
	flipped := bytes.Clone(stream)
	flipped[len(flipped)/2] ^= 0x40
	tests := []struct {
		name   string
		stream []byte
		stop   <-chan struct{}
		want   error
	}{
		{name: "truncated", stream: stream[:len(stream)-3], want: ErrCorrupt},
		{name: "cut in half", stream: stream[:len(stream)/2], want: ErrCorrupt},
		{name: "bit flip", stream: flipped, want: ErrCorrupt},
		{name: "bad magic", stream: []byte("NOTASNAP"), want: ErrCorrupt},
		{name: "empty", stream: nil, want: ErrCorrupt},
		{name: "stopped", stream: stream, stop: closed, want: ErrStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := openMem(t)
			fill(t, dst, 1, 1)
			if err := dst.Import(1, bytes.NewReader(tt.stream), tt.stop); !errors.Is(err, tt.want) {
				t.Fatalf("Import error = %v, want %v", err, tt.want)
			}
			if _, ok, _ := dst.State(1); ok {
				t.Fatal("a failed import left a state key")
			}
			if bs, _ := dst.Read(1, 0, 1<<20); len(bs) != 0 {
				t.Fatal("a failed import left records")
			}
		})
	}
}
