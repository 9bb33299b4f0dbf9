package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"shardlog/batch"
	"shardlog/ids"
)

func TestShardFetchReadsApplied(t *testing.T) {
	h := newHarness(t, memStore(t), 1, 1)
	h.update(app(t, 0, 0, 3), app(t, 0, 0, 3), app(t, 0, 0, 3))
	tests := []struct {
		name      string
		offset    ids.Offset
		maxBytes  int
		wantBases []ids.Offset
		wantErr   error
	}{
		{name: "from start", offset: 0, maxBytes: 1 << 20, wantBases: []ids.Offset{0, 3, 6}},
		{name: "mid batch", offset: 4, maxBytes: 1 << 20, wantBases: []ids.Offset{3, 6}},
		{name: "max bytes", offset: 0, maxBytes: 1, wantBases: []ids.Offset{0}},
		{name: "at end, no wait", offset: 9, maxBytes: 1 << 20},
		{name: "beyond end", offset: 10, maxBytes: 1 << 20, wantErr: ErrOffsetOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, st, err := Fetch(t.Context(), h.store, h.hub, 1, tt.offset, tt.maxBytes, 0)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if len(bs) != len(tt.wantBases) {
				t.Fatalf("got %d batches, want %v", len(bs), tt.wantBases)
			}
			for i, b := range bs {
				if b.Base != tt.wantBases[i] {
					t.Fatalf("batch %d base %d, want %d", i, b.Base, tt.wantBases[i])
				}
			}
			if st.NextOffset != 9 {
				t.Fatalf("state = %+v", st)
			}
		})
	}
	h.update(EncodeTruncate(nil, 3))
	if _, _, err := Fetch(t.Context(), h.store, h.hub, 1, 2, 1<<20, 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("below log start: %v", err)
	}
	if _, _, err := Fetch(t.Context(), h.store, h.hub, 99, 0, 1<<20, 0); !errors.Is(err, ErrShardNotFound) {
		t.Fatalf("unknown shard: %v", err)
	}
}

func TestShardFetchLongPollWakesOnApply(t *testing.T) {
	h := newHarness(t, memStore(t), 1, 1)
	h.update(app(t, 0, 0, 2))
	type result struct {
		base ids.Offset
		n    int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		bs, _, err := Fetch(context.Background(), h.store, h.hub, 1, 2, 1<<20, 10*time.Second)
		r := result{n: len(bs), err: err}
		if len(bs) > 0 {
			r.base = bs[0].Base
		}
		done <- r
	}()
	// Give the fetcher time to block; an apply before that is also fine,
	// since it then reads the data directly.
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	h.update(app(t, 0, 0, 1))
	select {
	case r := <-done:
		if r.err != nil || r.n != 1 || r.base != 2 {
			t.Fatalf("woken fetch = %+v", r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("fetch woke after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("fetch was not woken by the apply")
	}
}

func TestShardFetchLongPollTimesOut(t *testing.T) {
	h := newHarness(t, memStore(t), 1, 1)
	h.update(app(t, 0, 0, 2))
	start := time.Now()
	bs, st, err := Fetch(t.Context(), h.store, h.hub, 1, 2, 1<<20, 50*time.Millisecond)
	if err != nil || len(bs) != 0 || st.NextOffset != 2 {
		t.Fatalf("timed out fetch = %d batches, %+v, %v", len(bs), st, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("returned after %v, before maxWait", d)
	}
	// A truncate wakes the fetcher but brings no data: it keeps waiting.
	go func() {
		time.Sleep(10 * time.Millisecond)
		h.hub.Notify(1)
	}()
	if bs, _, err := Fetch(t.Context(), h.store, h.hub, 1, 2, 1<<20, 60*time.Millisecond); err != nil || len(bs) != 0 {
		t.Fatalf("fetch after a spurious wake = %d, %v", len(bs), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := Fetch(ctx, h.store, h.hub, 1, 2, 1<<20, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch with an expiring context = %v", err)
	}
}

func TestShardHubRemoveWakes(t *testing.T) {
	hub := NewHub()
	w := hub.Wait(3)
	other := hub.Wait(4)
	hub.Remove(3)
	select {
	case <-w:
	default:
		t.Fatal("Remove did not wake the waiter")
	}
	select {
	case <-other:
		t.Fatal("Remove woke another shard")
	default:
	}
	var nilHub *Hub
	nilHub.Notify(1)
	if nilHub.Wait(1) != nil {
		t.Fatal("nil hub returned a channel")
	}
}

// TestShardFetchDuringSnapshotImport reads a replica while it imports a snapshot large
// enough to be written in several Pebble batches: the shard's keys are deleted first,
// so a read in between would find no state (Internal) or half the log (a spurious
// OutOfRange). Every answer must be a correct read or ErrRecovering.
func TestShardFetchDuringSnapshotImport(t *testing.T) {
	src := newHarness(t, memStore(t), 2, 1)
	recs := make([]batch.Record, 64)
	for i := range recs {
		recs[i] = batch.Record{Value: bytes.Repeat([]byte{'x'}, 4096), Timestamp: 1000}
	}
	b, err := batch.Encode(nil, recs, batch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 { // 10 MiB: three import batches
		src.update(EncodeAppend(nil, 0, 0, b))
	}
	snap, err := src.sm.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.sm.SaveSnapshot(snap, &buf, nil); err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t, memStore(t), 2, 5)
	dst.update(app(t, 0, 0, 5))
	fetches, recovering := 0, 0
	var bad error // the first wrong answer; the import is waited for before failing
	for range 5 {
		done := make(chan error, 1)
		go func() { done <- dst.sm.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil) }()
		for imported := false; !imported; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				imported = true
			default:
			}
			if bad != nil {
				continue
			}
			bs, _, err := Fetch(t.Context(), dst.store, dst.hub, 2, 3, 1<<20, 0)
			fetches++
			switch {
			case errors.Is(err, ErrRecovering):
				recovering++
			case err != nil:
				bad = err
			case len(bs) == 0 || bs[0].Base > 3:
				bad = fmt.Errorf("batches from %v", bs)
			}
		}
		if bad != nil {
			t.Fatalf("fetch during a snapshot import: %v", bad)
		}
	}
	t.Logf("%d fetches, %d answered ErrRecovering", fetches, recovering)
	if recovering == 0 {
		t.Skip("no fetch overlapped an import on this run")
	}
}
