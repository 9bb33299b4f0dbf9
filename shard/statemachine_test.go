package shard

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/lni/dragonboat/v4/statemachine"

	"shardlog/batch"
	"shardlog/ids"
	"shardlog/segment"
)

var quiet = slog.New(slog.DiscardHandler)

func memStore(t *testing.T) *segment.Store {
	t.Helper()
	s, err := segment.Open("db", segment.Options{FS: vfs.NewMem(), CacheBytes: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// harness drives one state machine directly, numbering entries itself.
type harness struct {
	t     *testing.T
	store *segment.Store
	hub   *Hub
	sm    statemachine.IOnDiskStateMachine
	index uint64
}

func newHarness(t *testing.T, store *segment.Store, shard, replica uint64) *harness {
	t.Helper()
	h := &harness{t: t, store: store, hub: NewHub()}
	h.sm = NewFactory(store, h.hub, quiet)(shard, replica)
	idx, err := h.sm.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.index = idx
	return h
}

// update applies the commands as one Update call and returns their results.
func (h *harness) update(cmds ...[]byte) []statemachine.Result {
	h.t.Helper()
	entries := make([]statemachine.Entry, len(cmds))
	for i, c := range cmds {
		h.index++
		entries[i] = statemachine.Entry{Index: h.index, Cmd: c}
	}
	out, err := h.sm.Update(entries)
	if err != nil {
		h.t.Fatal(err)
	}
	rs := make([]statemachine.Result, len(out))
	for i, e := range out {
		rs[i] = e.Result
	}
	return rs
}

func (h *harness) state() segment.ShardState {
	h.t.Helper()
	v, err := h.sm.Lookup(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return v.(segment.ShardState)
}

// encBatch encodes n records whose values name tag.
func encBatch(t *testing.T, n int, tag string) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: []byte(tag), Timestamp: 1000}
	}
	b, err := batch.Encode(nil, recs, batch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func app(t *testing.T, pid, seq uint64, n int) []byte {
	return EncodeAppend(nil, pid, seq, encBatch(t, n, "v"))
}

func mustResult(t *testing.T, r statemachine.Result) AppendResult {
	t.Helper()
	ar, err := DecodeResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return ar
}

func TestShardAppendDenseOffsets(t *testing.T) {
	h := newHarness(t, memStore(t), 5, 1)
	rs := h.update(app(t, 0, 0, 3), app(t, 0, 0, 1), app(t, 0, 0, 4))
	rs = append(rs, h.update(app(t, 0, 0, 2))...)
	var bases []ids.Offset
	for _, r := range rs {
		bases = append(bases, mustResult(t, r).Base)
	}
	if want := []ids.Offset{0, 3, 4, 8}; !reflect.DeepEqual(bases, want) {
		t.Fatalf("bases = %v, want %v", bases, want)
	}
	st := h.state()
	if st.NextOffset != 10 || st.AppliedIndex != 4 || st.ReplicaID != 1 || st.LogStart != 0 {
		t.Fatalf("state = %+v", st)
	}
	stored, err := h.store.Read(5, 0, 1<<20)
	if err != nil || len(stored) != 4 {
		t.Fatalf("stored %d batches, err %v", len(stored), err)
	}
	if !bytes.Equal(stored[2].Data, encBatch(t, 4, "v")) {
		t.Fatal("stored batch differs from the proposed bytes")
	}
}

func TestShardIdempotence(t *testing.T) {
	type step struct {
		seq     uint64
		wantErr error
		want    AppendResult
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "unknown producer must start at sequence 0", steps: []step{
			{seq: 1, wantErr: &SequenceError{Expected: 0, Got: 1}},
			{seq: 0, want: AppendResult{Base: 0, Count: 2}},
			{seq: 1, want: AppendResult{Base: 2, Count: 2}},
		}},
		{name: "retry is a duplicate with the original offsets", steps: []step{
			{seq: 0, want: AppendResult{Base: 0, Count: 2}},
			{seq: 1, want: AppendResult{Base: 2, Count: 2}},
			{seq: 0, want: AppendResult{Base: 0, Count: 2, Duplicate: true}},
			{seq: 1, want: AppendResult{Base: 2, Count: 2, Duplicate: true}},
			{seq: 2, want: AppendResult{Base: 4, Count: 2}},
		}},
		{name: "gap is out of order", steps: []step{
			{seq: 0, want: AppendResult{Base: 0, Count: 2}},
			{seq: 2, wantErr: &SequenceError{Expected: 1, Got: 2}},
			{seq: 1, want: AppendResult{Base: 2, Count: 2}},
		}},
		{name: "forgotten sequence is too old", steps: func() []step {
			var s []step
			for i := range uint64(segment.RecentSequences + 2) {
				s = append(s, step{seq: i, want: AppendResult{Base: ids.Offset(2 * i), Count: 2}})
			}
			s = append(s, step{seq: 0, wantErr: ErrSequenceTooOld}, step{seq: 1, wantErr: ErrSequenceTooOld},
				step{seq: 2, want: AppendResult{Base: 4, Count: 2, Duplicate: true}})
			return s
		}()},
	}
	for _, tt := range tests {
		for _, oneUpdate := range []bool{false, true} {
			name := tt.name + "/update per entry"
			if oneUpdate {
				name = tt.name + "/one update"
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, memStore(t), 1, 1)
				var rs []statemachine.Result
				if oneUpdate {
					var cmds [][]byte
					for _, s := range tt.steps {
						cmds = append(cmds, app(t, 9, s.seq, 2))
					}
					rs = h.update(cmds...)
				} else {
					for _, s := range tt.steps {
						rs = append(rs, h.update(app(t, 9, s.seq, 2))...)
					}
				}
				next := ids.Offset(0)
				for i, s := range tt.steps {
					got, err := DecodeResult(rs[i])
					if s.wantErr != nil {
						var se *SequenceError
						if want, ok := s.wantErr.(*SequenceError); ok {
							if !errors.As(err, &se) || *se != *want || !errors.Is(err, ErrOutOfOrderSequence) {
								t.Fatalf("step %d: error %v, want %v", i, err, want)
							}
						} else if !errors.Is(err, s.wantErr) {
							t.Fatalf("step %d: error %v, want %v", i, err, s.wantErr)
						}
						continue
					}
					if err != nil || got != s.want {
						t.Fatalf("step %d: %+v %v, want %+v", i, got, err, s.want)
					}
					if !got.Duplicate {
						next = got.Base + ids.Offset(got.Count)
					}
				}
				if st := h.state(); st.NextOffset != next {
					t.Fatalf("NextOffset = %d, want %d: a rejected append wrote data", st.NextOffset, next)
				}
			})
		}
	}
}

func TestShardMixedProducersInOneUpdate(t *testing.T) {
	h := newHarness(t, memStore(t), 1, 1)
	h.update(app(t, 1, 0, 1), app(t, 2, 0, 1))
	rs := h.update(
		app(t, 1, 1, 1), // p1 next
		app(t, 0, 0, 1), // no dedupe
		app(t, 2, 1, 1), // p2 next
		app(t, 1, 1, 1), // p1 retry within the same Update
		app(t, 2, 3, 1), // p2 gap
		app(t, 3, 0, 1), // new producer
		app(t, 1, 2, 1),
	)
	want := []struct {
		base ids.Offset
		dup  bool
		err  error
	}{{base: 2}, {base: 3}, {base: 4}, {base: 2, dup: true}, {err: ErrOutOfOrderSequence}, {base: 5}, {base: 6}}
	for i, w := range want {
		got, err := DecodeResult(rs[i])
		if w.err != nil {
			if !errors.Is(err, w.err) {
				t.Fatalf("entry %d: %v, want %v", i, err, w.err)
			}
			continue
		}
		if err != nil || got.Base != w.base || got.Duplicate != w.dup {
			t.Fatalf("entry %d: %+v %v, want base %d dup %v", i, got, err, w.base, w.dup)
		}
	}
	for pid, last := range map[uint64]uint64{1: 2, 2: 1, 3: 0} {
		ps, ok, err := h.store.Producer(1, pid)
		if err != nil || !ok || ps.LastSeq != last {
			t.Fatalf("producer %d: %+v %v %v, want last %d", pid, ps, ok, err, last)
		}
	}
}

func TestShardCorruptEntries(t *testing.T) {
	good := encBatch(t, 2, "v")
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		cmd  []byte
	}{
		{name: "crc mismatch", cmd: EncodeAppend(nil, 1, 0, flipped)},
		{name: "truncated batch", cmd: EncodeAppend(nil, 1, 0, good[:len(good)-1])},
		{name: "no batch", cmd: EncodeAppend(nil, 1, 0, nil)},
		{name: "empty entry", cmd: nil},
		{name: "unknown op", cmd: []byte{9, 1, 2}},
		{name: "short truncate", cmd: EncodeTruncate(nil, 5)[:4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, memStore(t), 1, 1)
			rs := h.update(tt.cmd, app(t, 1, 0, 2))
			if _, err := DecodeResult(rs[0]); !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("error = %v, want ErrCorruptBatch", err)
			}
			// Nothing was written and the producer sequence is still free.
			if got := mustResult(t, rs[1]); got.Base != 0 || got.Duplicate {
				t.Fatalf("next append = %+v", got)
			}
			if st := h.state(); st.AppliedIndex != 2 || st.NextOffset != 2 {
				t.Fatalf("state = %+v", st)
			}
		})
	}
}

func TestShardReopen(t *testing.T) {
	store := memStore(t)
	h := newHarness(t, store, 3, 7)
	h.update(app(t, 1, 0, 2), app(t, 1, 1, 2))
	h.update(app(t, 0, 0, 1))
	if err := h.sm.Close(); err != nil {
		t.Fatal(err)
	}

	again := NewFactory(store, nil, quiet)(3, 7)
	idx, err := again.Open(nil)
	if err != nil || idx != 3 {
		t.Fatalf("reopen = %d, %v; want 3", idx, err)
	}
	// The cached state carries on: offsets continue and dedupe remembers.
	entries, err := again.Update([]statemachine.Entry{{Index: 4, Cmd: app(t, 1, 1, 2)}, {Index: 5, Cmd: app(t, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if r := mustResult(t, entries[0].Result); !r.Duplicate || r.Base != 2 {
		t.Fatalf("retry after reopen = %+v", r)
	}
	if r := mustResult(t, entries[1].Result); r.Base != 5 {
		t.Fatalf("append after reopen = %+v", r)
	}
}

func TestShardReplicaChangeClearsData(t *testing.T) {
	store := memStore(t)
	h := newHarness(t, store, 3, 7)
	h.update(app(t, 1, 0, 2))
	other := newHarness(t, store, 4, 1) // a neighbour shard must survive
	other.update(app(t, 0, 0, 1))

	h2 := newHarness(t, store, 3, 8)
	if h2.index != 0 {
		t.Fatalf("Open for a new replica = %d, want 0", h2.index)
	}
	if st := h2.state(); st != (segment.ShardState{ReplicaID: 8}) {
		t.Fatalf("state after replica change = %+v", st)
	}
	if bs, _ := store.Read(3, 0, 1<<20); len(bs) != 0 {
		t.Fatal("old replica's records survived")
	}
	if _, ok, _ := store.Producer(3, 1); ok {
		t.Fatal("old replica's producer state survived")
	}
	if r := mustResult(t, h2.update(app(t, 1, 0, 2))[0]); r.Base != 0 || r.Duplicate {
		t.Fatalf("first append of the new replica = %+v", r)
	}
	if bs, _ := store.Read(4, 0, 1<<20); len(bs) != 1 {
		t.Fatal("neighbour shard lost data")
	}
}

func TestShardTruncate(t *testing.T) {
	h := newHarness(t, memStore(t), 1, 1)
	h.update(app(t, 0, 0, 3), app(t, 0, 0, 3), app(t, 0, 0, 3)) // [0,3) [3,6) [6,9)
	tests := []struct {
		name      string
		before    ids.Offset
		wantStart ids.Offset
		wantBases []ids.Offset
	}{
		{name: "below log start is a no-op", before: 0, wantStart: 0, wantBases: []ids.Offset{0, 3, 6}},
		{name: "inside first batch keeps it", before: 2, wantStart: 0, wantBases: []ids.Offset{0, 3, 6}},
		{name: "at a boundary drops before it", before: 3, wantStart: 3, wantBases: []ids.Offset{3, 6}},
		{name: "inside a batch keeps that batch", before: 7, wantStart: 6, wantBases: []ids.Offset{6}},
		{name: "never moves back", before: 4, wantStart: 6, wantBases: []ids.Offset{6}},
		{name: "past the end drops all", before: 100, wantStart: 9, wantBases: nil},
	}
	for _, tt := range tests {
		r := mustResult(t, h.update(EncodeTruncate(nil, tt.before))[0])
		st := h.state()
		bs, _ := h.store.Read(1, 0, 1<<20)
		var bases []ids.Offset
		for _, b := range bs {
			bases = append(bases, b.Base)
		}
		if r.Base != tt.wantStart || st.LogStart != tt.wantStart || !reflect.DeepEqual(bases, tt.wantBases) {
			t.Fatalf("%s: result %d, LogStart %d, bases %v; want %d, %v", tt.name, r.Base, st.LogStart, bases, tt.wantStart, tt.wantBases)
		}
	}
	// Appends continue after truncating everything.
	if r := mustResult(t, h.update(app(t, 0, 0, 1))[0]); r.Base != 9 {
		t.Fatalf("append after truncate = %+v", r)
	}
}

func TestShardTruncateWithinOneUpdate(t *testing.T) {
	h := newHarness(t, memStore(t), 1, 1)
	h.update(app(t, 0, 0, 2)) // [0,2) committed
	rs := h.update(
		app(t, 0, 0, 2),        // [2,4) pending
		app(t, 0, 0, 2),        // [4,6) pending
		EncodeTruncate(nil, 5), // keep [4,6)
		app(t, 0, 0, 2),        // [6,8)
		EncodeTruncate(nil, 3), // no-op
	)
	if r := mustResult(t, rs[2]); r.Base != 4 {
		t.Fatalf("truncate result = %+v", r)
	}
	bs, _ := h.store.Read(1, 0, 1<<20)
	if len(bs) != 2 || bs[0].Base != 4 || bs[1].Base != 6 {
		t.Fatalf("batches after truncate: %d", len(bs))
	}
	if st := h.state(); st.LogStart != 4 || st.NextOffset != 8 {
		t.Fatalf("state = %+v", st)
	}
}

func TestShardSnapshotRoundTrip(t *testing.T) {
	src := newHarness(t, memStore(t), 2, 1)
	src.update(app(t, 1, 0, 3), app(t, 1, 1, 3))
	ctx, err := src.sm.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	src.update(app(t, 1, 2, 3)) // after the snapshot point
	var buf bytes.Buffer
	if err := src.sm.SaveSnapshot(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}

	dstStore := memStore(t)
	dst := newHarness(t, dstStore, 2, 5)
	wake := dst.hub.Wait(2)
	if err := dst.sm.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("recovery did not wake fetchers")
	}
	st := dst.state()
	if st != (segment.ShardState{ReplicaID: 5, AppliedIndex: 2, NextOffset: 6}) {
		t.Fatalf("recovered state = %+v", st)
	}
	// The recovered replica owns the data: reopening keeps it.
	reopened := NewFactory(dstStore, nil, quiet)(2, 5)
	if idx, err := reopened.Open(nil); err != nil || idx != 2 {
		t.Fatalf("reopen after recovery = %d, %v", idx, err)
	}
	// And it continues exactly like the source: dedupe state came along.
	entries, err := reopened.Update([]statemachine.Entry{{Index: 3, Cmd: app(t, 1, 1, 3)}, {Index: 4, Cmd: app(t, 1, 2, 3)}})
	if err != nil {
		t.Fatal(err)
	}
	if r := mustResult(t, entries[0].Result); !r.Duplicate || r.Base != 3 {
		t.Fatalf("duplicate after recovery = %+v", r)
	}
	if r := mustResult(t, entries[1].Result); r.Base != 6 || r.Duplicate {
		t.Fatalf("append after recovery = %+v", r)
	}

	stop := make(chan struct{})
	close(stop)
	ctx, _ = src.sm.PrepareSnapshot()
	if err := src.sm.SaveSnapshot(ctx, &bytes.Buffer{}, stop); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("stopped SaveSnapshot = %v", err)
	}
	if err := dst.sm.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), stop); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("stopped RecoverFromSnapshot = %v", err)
	}
}

func TestShardDecodeResult(t *testing.T) {
	tests := []struct {
		name    string
		r       statemachine.Result
		want    AppendResult
		wantErr error
	}{
		{name: "appended", r: offsetsResult(statusAppended, 7, 3), want: AppendResult{Base: 7, Count: 3}},
		{name: "duplicate", r: offsetsResult(statusDuplicate, 7, 3), want: AppendResult{Base: 7, Count: 3, Duplicate: true}},
		{name: "truncated", r: truncatedResult(40), want: AppendResult{Base: 40}},
		{name: "out of order", r: pairResult(statusOutOfOrder, 2, 5), wantErr: ErrOutOfOrderSequence},
		{name: "too old", r: pairResult(statusTooOld, 9, 1), wantErr: ErrSequenceTooOld},
		{name: "corrupt", r: corruptResult(errors.New("x")), wantErr: ErrCorruptBatch},
		{name: "zero", r: statemachine.Result{}, wantErr: ErrBadResult},
		{name: "short data", r: statemachine.Result{Value: statusAppended, Data: []byte{1}}, wantErr: ErrBadResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResult(tt.r)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("result = %+v, want %+v", got, tt.want)
			}
		})
	}
}
