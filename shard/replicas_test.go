package shard

import (
	"context"
	"errors"
	"shardlog/ids"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"
)

func TestShardReplicasProduce(t *testing.T) {
	bad := func(r statemachine.Result) *statemachine.Result { return &r }
	tests := []struct {
		name       string
		producer   uint64
		seq        uint64
		proposeErr error
		waitErr    error
		result     *statemachine.Result
		want       AppendResult
		wantErr    error
		applied    ids.Offset // NextOffset after the call
	}{
		{name: "appends at the next offset", want: AppendResult{Base: 0, Count: 3}, applied: 3},
		{name: "idempotent producer appends", producer: 7, seq: 0, want: AppendResult{Base: 0, Count: 3}, applied: 3},
		{name: "not leader: nothing proposed", proposeErr: dragonboat.ErrShardNotReady, wantErr: dragonboat.ErrShardNotReady},
		{name: "busy: nothing proposed", proposeErr: dragonboat.ErrSystemBusy, wantErr: dragonboat.ErrSystemBusy},
		{name: "dropped after it was queued", waitErr: dragonboat.ErrShardNotReady, wantErr: dragonboat.ErrShardNotReady, applied: 3},
		{name: "timed out in Raft", waitErr: dragonboat.ErrTimeout, wantErr: dragonboat.ErrTimeout, applied: 3},
		{name: "out of order sequence", result: bad(pairResult(statusOutOfOrder, 2, 5)), wantErr: ErrOutOfOrderSequence, applied: 3},
		{name: "sequence too old", result: bad(pairResult(statusTooOld, 9, 1)), wantErr: ErrSequenceTooOld, applied: 3},
		{name: "corrupt batch", result: bad(corruptResult(errors.New("crc"))), wantErr: ErrCorruptBatch, applied: 3},
		{name: "result with no status", result: bad(statemachine.Result{}), wantErr: ErrBadResult, applied: 3},
		{name: "result cut short", result: bad(statemachine.Result{Value: statusAppended, Data: []byte{1, 2}}), wantErr: ErrBadResult, applied: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRaft(t)
			f.proposeErr, f.waitErr, f.result = tt.proposeErr, tt.waitErr, tt.result
			got, err := testReplicas(f).Produce(t.Context(), testShard, tt.producer, tt.seq, encBatch(t, 3, "v"))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("result = %+v, want %+v", got, tt.want)
			}
			if st := f.h.state(); st.NextOffset != tt.applied {
				t.Fatalf("NextOffset = %d, want %d", st.NextOffset, tt.applied)
			}
			if cmds := f.commands(t); tt.proposeErr == nil && (len(cmds) != 1 || cmds[0].producerID != tt.producer ||
				cmds[0].seq != tt.seq || len(cmds[0].batch) == 0) {
				t.Fatalf("proposed %+v, want one append of producer %d seq %d", cmds, tt.producer, tt.seq)
			}
		})
	}
}

// knownProducer returns Replicas over a fake in which producer 7 appended
// sequence 0, so the sequence gate knows the producer.
func knownProducer(t *testing.T, sequenceWait time.Duration) (*fakeRaft, *Replicas) {
	t.Helper()
	f := newFakeRaft(t)
	r := testReplicas(f)
	r.cfg.SequenceWait = sequenceWait
	if _, err := r.Produce(t.Context(), testShard, 7, 0, encBatch(t, 1, "0")); err != nil {
		t.Fatal(err)
	}
	return f, r
}

func TestShardReplicasProduceSequenceErrorKeepsFields(t *testing.T) {
	_, r := knownProducer(t, 10*time.Millisecond)
	_, err := r.Produce(t.Context(), testShard, 7, 2, encBatch(t, 1, "b")) // a gap: the state machine refuses it
	var se *SequenceError
	if !errors.As(err, &se) || se.Expected != 1 || se.Got != 2 {
		t.Fatalf("error = %v, want a *SequenceError expecting 1, got 2", err)
	}
}

func TestShardReplicasProduceWaitsUntilApplied(t *testing.T) {
	f := newFakeRaft(t)
	f.hold = make(chan struct{})
	r := testReplicas(f)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	// Committed, but its outcome never reached the caller: no acknowledgement.
	if res, err := r.Produce(ctx, testShard, 7, 0, encBatch(t, 2, "a")); !errors.Is(err, dragonboat.ErrTimeout) {
		t.Fatalf("Produce = %+v, %v; want ErrTimeout, the outcome unknown", res, err)
	}
	// The retry of the same sequence is applied once and answers the original offsets.
	close(f.hold)
	f.hold = nil
	res, err := r.Produce(t.Context(), testShard, 7, 0, encBatch(t, 2, "a"))
	if err != nil || res != (AppendResult{Base: 0, Count: 2, Duplicate: true}) {
		t.Fatalf("retry = %+v, %v; want the original offsets as a duplicate", res, err)
	}
	if st := f.h.state(); st.NextOffset != 2 {
		t.Fatalf("NextOffset = %d after a retry, want 2 (applied once)", st.NextOffset)
	}
}

func TestShardReplicasGateOrdersPipelinedBatches(t *testing.T) {
	f, r := knownProducer(t, 5*time.Second)
	// 3, 2, 1 reach the handler in reverse order; they must enter the log 1, 2, 3
	// and all be applied (without the gate the state machine refuses 3 and 2).
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for _, seq := range []uint64{3, 2, 1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[seq] = r.Produce(t.Context(), testShard, 7, seq, encBatch(t, 1, "x"))
		}()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	for seq, err := range errs {
		if err != nil {
			t.Errorf("seq %d: %v", seq, err)
		}
	}
	var seqs []uint64
	for _, c := range f.commands(t) {
		seqs = append(seqs, c.seq)
	}
	if len(seqs) != 4 || seqs[1] != 1 || seqs[2] != 2 || seqs[3] != 3 {
		t.Fatalf("proposed sequences %v, want [0 1 2 3]", seqs)
	}
}

func TestShardReplicasGateNotReleasedByFailedPropose(t *testing.T) {
	f, r := knownProducer(t, 100*time.Millisecond)
	f.mu.Lock()
	f.proposeErr = dragonboat.ErrSystemBusy
	f.mu.Unlock()
	if _, err := r.Produce(t.Context(), testShard, 7, 1, encBatch(t, 1, "1")); !errors.Is(err, dragonboat.ErrSystemBusy) {
		t.Fatalf("seq 1: %v, want ErrSystemBusy", err)
	}
	f.mu.Lock()
	f.proposeErr = nil
	f.mu.Unlock()
	// 1 was never proposed, so 2 waits the whole SequenceWait, then the state
	// machine decides (and refuses the gap).
	start := time.Now()
	_, err := r.Produce(t.Context(), testShard, 7, 2, encBatch(t, 1, "2"))
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("seq 2 waited %v, want the SequenceWait of 100ms", d)
	}
	if !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("seq 2: %v, want ErrOutOfOrderSequence", err)
	}
}

func TestShardReplicasRead(t *testing.T) {
	tests := []struct {
		name       string
		offset     ids.Offset
		confirmEnd bool
		readErr    error
		catchUp    bool // the read index finds 3 more records committed
		wantBase   ids.Offset
		wantErr    error
		wantReads  int
	}{
		{name: "in range: no read index", offset: 1, confirmEnd: true, wantBase: 0},
		{name: "past the end on a named replica: out of range", offset: 5, wantErr: ErrOffsetOutOfRange},
		{name: "past the end on the leader: caught up after a read index", offset: 5, confirmEnd: true, catchUp: true,
			wantBase: 3, wantReads: 1},
		{name: "past the end of the whole log", offset: 9, confirmEnd: true, catchUp: true, wantErr: ErrOffsetOutOfRange, wantReads: 1},
		{name: "read index fails: try again", offset: 5, confirmEnd: true, readErr: dragonboat.ErrTimeout,
			wantErr: ErrLogEndUnconfirmed, wantReads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRaft(t)
			f.h.update(EncodeAppend(nil, 0, 0, encBatch(t, 3, "old")))
			f.readErr = tt.readErr
			if tt.catchUp {
				f.onRead = func() { f.h.update(EncodeAppend(nil, 0, 0, encBatch(t, 3, "new"))) }
			}
			batches, _, err := testReplicas(f).Read(t.Context(), testShard, tt.offset, 1<<20, 0, tt.confirmEnd)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.readErr != nil && errors.Is(err, tt.readErr) {
				t.Fatalf("error %v carries the read index's %v: it would map to its code", err, tt.readErr)
			}
			if f.reads != tt.wantReads {
				t.Fatalf("%d read indexes, want %d", f.reads, tt.wantReads)
			}
			if tt.wantErr == nil && (len(batches) == 0 || batches[0].Base != tt.wantBase) {
				t.Fatalf("batches %+v, want the one at %d first", batches, tt.wantBase)
			}
		})
	}
}

func TestShardReplicasRetain(t *testing.T) {
	tests := []struct {
		name        string
		notLeader   bool
		olderThanMs int64
		maxBytes    int64
		proposeErr  error
		result      *statemachine.Result
		wantBefore  ids.Offset
		wantDropped bool
		wantErr     error
		logStart    ids.Offset
	}{
		{name: "not leader: nothing proposed", notLeader: true, olderThanMs: 2000},
		{name: "nothing past the limits", olderThanMs: 500},
		{name: "old batches dropped, the newest kept", olderThanMs: 2000, wantBefore: 4, wantDropped: true, logStart: 4},
		{name: "size limit keeps the newest that fit", maxBytes: 1, wantBefore: 4, wantDropped: true, logStart: 4},
		{name: "not leader any more: propose fails", olderThanMs: 2000, proposeErr: dragonboat.ErrShardNotReady,
			wantErr: dragonboat.ErrShardNotReady},
		{name: "malformed truncate result", olderThanMs: 2000, result: &statemachine.Result{Value: statusTruncated},
			wantErr: ErrBadResult, logStart: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeRaft(t)
			for range 3 { // records at 1000 ms: batches at 0, 2 and 4
				f.h.update(EncodeAppend(nil, 0, 0, encBatch(t, 2, "v")))
			}
			before := len(f.commands(t))
			f.leader, f.proposeErr, f.result = !tt.notLeader, tt.proposeErr, tt.result
			got, dropped, err := testReplicas(f).Retain(t.Context(), testShard, tt.olderThanMs, tt.maxBytes)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.wantBefore || dropped != tt.wantDropped {
				t.Fatalf("Retain = %d, %v; want %d, %v", got, dropped, tt.wantBefore, tt.wantDropped)
			}
			if st := f.h.state(); st.LogStart != tt.logStart {
				t.Fatalf("LogStart = %d, want %d", st.LogStart, tt.logStart)
			}
			cmds := f.commands(t)[before:]
			proposed := tt.wantDropped || (tt.proposeErr == nil && tt.wantErr != nil)
			if proposed != (len(cmds) == 1) || (proposed && (cmds[0].op != opTruncate || cmds[0].before != 4)) {
				t.Fatalf("proposed %+v, want a truncate before 4: %v", cmds, proposed)
			}
		})
	}
}
