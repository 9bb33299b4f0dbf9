package shard

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/lni/dragonboat/v4/statemachine"

	"shardlog/batch"
	"shardlog/ids"
	"shardlog/segment"
)

// NewFactory returns the dragonboat factory of data shard state machines,
// all over the node's one store. hub may be nil (no fetch wake-ups).
func NewFactory(store *segment.Store, hub *Hub, log *slog.Logger) statemachine.CreateOnDiskStateMachineFunc {
	if log == nil {
		log = slog.Default()
	}
	return func(shardID, replicaID uint64) statemachine.IOnDiskStateMachine {
		return &stateMachine{
			store:     store,
			hub:       hub,
			shard:     ids.ShardID(shardID),
			replicaID: ids.ReplicaID(replicaID),
			log:       log.With("shard", shardID, "replica", replicaID),
		}
	}
}

// stateMachine is one shard replica. dragonboat serialises Open, Update,
// PrepareSnapshot and RecoverFromSnapshot, so state is touched only by them;
// Lookup and SaveSnapshot may run concurrently and read pebble only.
type stateMachine struct {
	store     *segment.Store
	hub       *Hub
	shard     ids.ShardID
	replicaID ids.ReplicaID
	log       *slog.Logger

	// state is the last committed ShardState (owned by the update path).
	state segment.ShardState
}

var _ statemachine.IOnDiskStateMachine = (*stateMachine)(nil)

// Open returns the applied index, or clears the shard's keys and returns 0
// when they belong to another replica (or to none).
func (sm *stateMachine) Open(<-chan struct{}) (uint64, error) {
	st, ok, err := sm.store.State(sm.shard)
	if err != nil {
		return 0, fmt.Errorf("shard %d: open: %w", sm.shard, err)
	}
	if ok && st.ReplicaID == sm.replicaID {
		sm.state = st
		return st.AppliedIndex, nil
	}
	if ok {
		sm.log.Info("clearing data of a previous replica", "previous_replica", st.ReplicaID)
	}
	if err := sm.store.DeleteShard(sm.shard); err != nil {
		return 0, fmt.Errorf("shard %d: open: %w", sm.shard, err)
	}
	// A state key right away lets Fetch and Store.Shards see the replica.
	sm.state = segment.ShardState{ReplicaID: sm.replicaID}
	wb := sm.store.NewWriteBatch()
	defer wb.Close()
	wb.PutState(sm.shard, sm.state)
	if err := wb.Commit(true); err != nil {
		return 0, fmt.Errorf("shard %d: open: %w", sm.shard, err)
	}
	return 0, nil
}

// span is a batch appended earlier in the current Update call.
type span struct {
	base  ids.Offset
	count uint32
}

// applier holds one Update call's pending writes and overlays: the pebble
// batch is not readable until committed.
type applier struct {
	sm        *stateMachine
	wb        *segment.WriteBatch
	st        segment.ShardState
	producers map[uint64]segment.ProducerState
	appended  []span
}

// Update applies entries in one WriteBatch, committed without fsync.
func (sm *stateMachine) Update(entries []statemachine.Entry) ([]statemachine.Entry, error) {
	a := applier{sm: sm, wb: sm.store.NewWriteBatch(), st: sm.state}
	defer a.wb.Close()
	for i := range entries {
		r, err := a.apply(entries[i].Cmd)
		if err != nil {
			return nil, fmt.Errorf("shard %d: update at index %d: %w", sm.shard, entries[i].Index, err)
		}
		entries[i].Result = r
		a.st.AppliedIndex = entries[i].Index
	}
	pids := make([]uint64, 0, len(a.producers))
	for pid := range a.producers {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		a.wb.PutProducer(sm.shard, pid, a.producers[pid])
	}
	a.wb.PutState(sm.shard, a.st)
	if err := a.wb.Commit(false); err != nil {
		return nil, fmt.Errorf("shard %d: update: %w", sm.shard, err)
	}
	sm.state = a.st
	sm.hub.Notify(sm.shard)
	return entries, nil
}

// apply applies one command. Only storage errors are returned; a rejected
// command is a Result.
func (a *applier) apply(cmd []byte) (statemachine.Result, error) {
	c, err := decodeCommand(cmd)
	if err != nil {
		return corruptResult(err), nil
	}
	if c.op == opTruncate {
		return a.truncate(c.before)
	}
	info, err := batch.Check(c.batch)
	if err != nil {
		return corruptResult(err), nil
	}
	var ps segment.ProducerState
	if c.producerID != 0 {
		known := false
		if ps, known, err = a.producer(c.producerID); err != nil {
			return statemachine.Result{}, err
		}
		if known {
			if r, done := checkSequence(ps, c.seq); done {
				return r, nil
			}
		} else if c.seq != 0 {
			// A producer's sequences start at 0. Accepting any first sequence let
			// a pipelined batch 1 overtake batch 0, which was then refused as too
			// old: the client's retry of 0 could never land. Found by the client's
			// run against the real server.
			return pairResult(statusOutOfOrder, 0, c.seq), nil
		}
	}
	base := a.st.NextOffset
	a.wb.PutRecordBatch(a.sm.shard, base, c.batch)
	a.appended = append(a.appended, span{base: base, count: info.Count})
	a.st.NextOffset += ids.Offset(info.Count)
	if c.producerID != 0 {
		ps.LastSeq = c.seq
		recent := append(slices.Clone(ps.Recent), segment.SeqOffset{Seq: c.seq, Base: base, Count: info.Count})
		if len(recent) > segment.RecentSequences {
			recent = recent[len(recent)-segment.RecentSequences:]
		}
		ps.Recent = recent
		a.producers[c.producerID] = ps
	}
	return offsetsResult(statusAppended, base, info.Count), nil
}

// checkSequence decides a known producer's sequence; done is false when
// the append should go ahead.
func checkSequence(ps segment.ProducerState, seq uint64) (r statemachine.Result, done bool) {
	if seq == ps.LastSeq+1 {
		return statemachine.Result{}, false
	}
	for _, so := range ps.Recent {
		if so.Seq == seq {
			return offsetsResult(statusDuplicate, so.Base, so.Count), true
		}
	}
	if seq <= ps.LastSeq {
		return pairResult(statusTooOld, ps.LastSeq, seq), true
	}
	return pairResult(statusOutOfOrder, ps.LastSeq+1, seq), true
}

// producer reads a producer's state through this call's overlay.
func (a *applier) producer(pid uint64) (segment.ProducerState, bool, error) {
	if a.producers == nil {
		a.producers = make(map[uint64]segment.ProducerState)
	}
	if ps, ok := a.producers[pid]; ok {
		return ps, true, nil
	}
	return a.sm.store.Producer(a.sm.shard, pid)
}

// truncate drops the batches that lie wholly before offset before; the
// batch containing it is kept and becomes the log start.
func (a *applier) truncate(before ids.Offset) (statemachine.Result, error) {
	if before <= a.st.LogStart {
		return truncatedResult(a.st.LogStart), nil
	}
	keep := a.st.NextOffset
	// Batches committed before this call are in pebble; those appended in
	// this call (all at higher offsets) only in a.appended.
	base, _, found, err := a.sm.store.Locate(a.sm.shard, before)
	if err != nil {
		return statemachine.Result{}, err
	}
	if found && base < a.sm.state.NextOffset {
		keep = base
	} else {
		for _, s := range a.appended {
			if s.base+ids.Offset(s.count) > before {
				keep = s.base
				break
			}
		}
	}
	if keep > a.st.LogStart {
		a.wb.DeleteRecordBatchesBefore(a.sm.shard, keep)
		a.st.LogStart = keep
	}
	return truncatedResult(a.st.LogStart), nil
}

// Lookup returns the shard's current segment.ShardState, whatever the query.
// It reads pebble only, so it is safe beside Update and after Close.
func (sm *stateMachine) Lookup(any) (any, error) {
	st, _, err := sm.store.State(sm.shard)
	return st, err
}

// Sync makes everything applied durable.
func (sm *stateMachine) Sync() error { return sm.store.Sync() }

// PrepareSnapshot captures the store; dragonboat runs it exclusive of Update.
func (sm *stateMachine) PrepareSnapshot() (any, error) { return sm.store.NewSnapshot(), nil }

// SaveSnapshot streams the shard from the captured store, then releases it.
func (sm *stateMachine) SaveSnapshot(ctx any, w io.Writer, stop <-chan struct{}) error {
	snap, ok := ctx.(*segment.Snapshot)
	if !ok {
		return fmt.Errorf("shard %d: snapshot context of type %T", sm.shard, ctx)
	}
	err := snap.Export(sm.shard, w, stop)
	err = errors.Join(err, snap.Close())
	if errors.Is(err, segment.ErrStopped) {
		return statemachine.ErrSnapshotStopped
	}
	return err
}

// RecoverFromSnapshot replaces the shard's data with a snapshot stream, as
// owned by this replica.
func (sm *stateMachine) RecoverFromSnapshot(r io.Reader, stop <-chan struct{}) error {
	sm.hub.BeginImport(sm.shard)
	defer sm.hub.EndImport(sm.shard)
	if err := sm.store.ImportAs(sm.shard, sm.replicaID, r, stop); err != nil {
		if errors.Is(err, segment.ErrStopped) {
			return statemachine.ErrSnapshotStopped
		}
		return err
	}
	st, _, err := sm.store.State(sm.shard)
	if err != nil {
		return err
	}
	sm.state = st
	return nil
}

// Close does nothing: the store is shared and outlives the replica.
func (sm *stateMachine) Close() error { return nil }
