package shard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"shardlog/ids"
	"shardlog/segment"
)

// ReplicasConfig holds the data path's timeouts.
type ReplicasConfig struct {
	// ProposalTimeout bounds how long Raft may take to commit and apply an
	// entry before dropping it (node's --proposal-timeout).
	ProposalTimeout time.Duration
	// SequenceWait bounds how long a producer's batch waits at the sequence
	// gate for its predecessor to be proposed (node's --sequence-wait).
	SequenceWait time.Duration
}

// Replicas is the data path of the shard replicas on one node: produce
// (encode the append, pass the sequence gate, propose, wait until applied,
// decode the result), fetch (read what was applied, confirming the end of the
// log with a read index when asked) and the retention proposal. It is safe for
// concurrent use.
type Replicas struct {
	raft  Raft
	store *segment.Store
	hub   *Hub
	cfg   ReplicasConfig
	gate  *seqGate
}

// NewReplicas returns the data path over raft, serving reads from store and
// waiting for new data on hub (the Hub the state machines notify).
func NewReplicas(raft Raft, store *segment.Store, hub *Hub, cfg ReplicasConfig) *Replicas {
	return &Replicas{raft: raft, store: store, hub: hub, cfg: cfg, gate: newSeqGate()}
}

// Produce appends batch (in the segment format) to the shard and returns its
// offsets once the entry is committed by a quorum (fsynced) and applied; it
// never returns a result before. A non-zero producerID makes the append
// idempotent per (producerID, seq); such batches pass the sequence gate first,
// so that a producer's pipelined batches enter the Raft log in order. The
// errors are those of DecodeResult, or why Raft did not apply the entry, both
// wrapped with the shard.
func (r *Replicas) Produce(ctx context.Context, shardID ids.ShardID, producerID, seq uint64, batch []byte) (AppendResult, error) {
	cmd := EncodeAppend(make([]byte, 0, appendHeaderSize+len(batch)), producerID, seq, batch)
	key := gateKey{shard: shardID, producer: producerID}
	if producerID != 0 {
		r.gate.await(ctx, key, seq, r.cfg.SequenceWait)
	}
	p, err := r.raft.Propose(shardID, cmd, r.cfg.ProposalTimeout)
	if err != nil {
		return AppendResult{}, fmt.Errorf("shard %d: propose append: %w", shardID, err)
	}
	if producerID != 0 {
		// NB: only after Propose returned, so the successor is queued behind it.
		r.gate.proposed(key, seq, time.Now())
	}
	return r.applied(ctx, shardID, p, "append")
}

// applied waits for the proposal's outcome and decodes its Result.
func (r *Replicas) applied(ctx context.Context, shardID ids.ShardID, p Proposal, what string) (AppendResult, error) {
	res, err := p.Wait(ctx)
	if err != nil {
		return AppendResult{}, fmt.Errorf("shard %d: %s: %w", shardID, what, err)
	}
	out, err := DecodeResult(res)
	if err != nil {
		return AppendResult{}, fmt.Errorf("shard %d: %s: %w", shardID, what, err)
	}
	return out, nil
}

// ForgetProducers drops the sequence gate's memory of producers not seen
// since cutoff; a forgotten producer's next batch does not wait.
func (r *Replicas) ForgetProducers(cutoff time.Time) { r.gate.sweep(cutoff) }

// Read serves a fetch of the shard from the local replica, as Fetch does.
// With confirmEnd (the replica was picked because it leads the shard, not
// asked for by name) an offset past what the replica applied is not refused
// at once: a leader elected a moment ago may not have applied all it
// committed yet, and would call an offset a consumer already read "out of
// range", sending the consumer back. Read then waits for a read index
// (applied up to the commit point) and reads again; if the read index fails,
// the error is ErrLogEndUnconfirmed ("try again").
func (r *Replicas) Read(ctx context.Context, shardID ids.ShardID, offset ids.Offset, maxBytes int, maxWait time.Duration, confirmEnd bool) ([]segment.StoredBatch, segment.ShardState, error) {
	batches, st, err := Fetch(ctx, r.store, r.hub, shardID, offset, maxBytes, maxWait)
	if !confirmEnd || !errors.Is(err, ErrOffsetOutOfRange) {
		return batches, st, err
	}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.ProposalTimeout)
	rerr := r.raft.ReadIndex(rctx, shardID)
	cancel()
	if rerr != nil {
		// NB: %v, not %w: a read index that timed out means "unavailable, try
		// again" for the fetch, not that the fetch's own deadline passed.
		return nil, segment.ShardState{}, fmt.Errorf("shard %d: %w: %v", shardID, ErrLogEndUnconfirmed, rerr)
	}
	return Fetch(ctx, r.store, r.hub, shardID, offset, maxBytes, maxWait)
}

// Retain drops the shard's batches past its retention through a truncate
// entry, so that every replica drops the same prefix; only the shard's leader
// proposes one. olderThanMs drops the batches whose newest record is older
// (Unix ms; 0: no time limit) and retentionBytes keeps the newest batches
// that fit (0: no size limit); the newest batch is always kept. It returns
// once the entry is applied, with before the first offset kept; dropped is
// false when this replica does not lead the shard or nothing is past the limits.
func (r *Replicas) Retain(ctx context.Context, shardID ids.ShardID, olderThanMs, retentionBytes int64) (before ids.Offset, dropped bool, err error) {
	if !r.raft.IsLeader(shardID) {
		return 0, false, nil
	}
	before, ok, err := r.store.RetentionPoint(shardID, olderThanMs, retentionBytes)
	if err != nil {
		return 0, false, fmt.Errorf("shard %d: retention point: %w", shardID, err)
	}
	if !ok {
		return 0, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ProposalTimeout)
	defer cancel()
	p, err := r.raft.Propose(shardID, EncodeTruncate(nil, before), r.cfg.ProposalTimeout)
	if err != nil {
		return 0, false, fmt.Errorf("shard %d: propose truncate: %w", shardID, err)
	}
	if _, err := r.applied(ctx, shardID, p, "truncate"); err != nil {
		return 0, false, err
	}
	return before, true, nil
}
