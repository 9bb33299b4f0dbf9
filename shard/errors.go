package shard

import (
	"errors"
	"fmt"
)

var (
	// ErrOutOfOrderSequence reports a producer sequence beyond the next
	// expected one; nothing was written. The error is a *SequenceError.
	ErrOutOfOrderSequence = errors.New("shard: out of order sequence")
	// ErrSequenceTooOld reports a producer sequence at or below the last one
	// that is no longer remembered, so its offsets cannot be returned.
	ErrSequenceTooOld = errors.New("shard: sequence too old")
	// ErrCorruptBatch reports an entry whose batch or framing failed its checks.
	ErrCorruptBatch = errors.New("shard: corrupt batch")
	// ErrOffsetOutOfRange reports a fetch offset outside [LogStart, NextOffset].
	ErrOffsetOutOfRange = errors.New("shard: offset out of range")
	// ErrShardNotFound reports a shard with no replica state on this node.
	ErrShardNotFound = errors.New("shard: no replica of the shard on this node")
	// ErrRecovering reports a replica that is replacing its data with a snapshot
	// streamed from the leader: it has nothing consistent to serve until done.
	ErrRecovering = errors.New("shard: replica is loading a snapshot")
	// ErrLogEndUnconfirmed reports a fetch past what the replica applied whose
	// read index (the commit point) failed: the answer is "try again".
	ErrLogEndUnconfirmed = errors.New("shard: cannot confirm the end of the log")
	// ErrBadResult reports a Result that no data shard Update produced.
	ErrBadResult = errors.New("shard: malformed result")
)

// SequenceError is the error for an out-of-order producer sequence.
type SequenceError struct {
	// Expected is the sequence the shard would accept next.
	Expected uint64
	// Got is the sequence the entry carried.
	Got uint64
}

// Error implements error.
func (e *SequenceError) Error() string {
	return fmt.Sprintf("shard: out of order sequence: expected %d, got %d", e.Expected, e.Got)
}

// Unwrap makes errors.Is(err, ErrOutOfOrderSequence) hold.
func (e *SequenceError) Unwrap() error { return ErrOutOfOrderSequence }
