package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"shardlog/ids"

	"github.com/lni/dragonboat/v4/statemachine"
)

const (
	opAppend   byte = 1
	opTruncate byte = 2

	appendHeaderSize = 17
)

// EncodeAppend appends to dst the entry that appends batch (in the segment
// format) for producer producerID with sequence seq; producerID 0 disables
// deduplication.
func EncodeAppend(dst []byte, producerID, seq uint64, batch []byte) []byte {
	dst = append(dst, opAppend)
	dst = binary.LittleEndian.AppendUint64(dst, producerID)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	return append(dst, batch...)
}

// EncodeTruncate appends to dst the entry that drops every batch lying
// wholly before offset before (retention).
func EncodeTruncate(dst []byte, before ids.Offset) []byte {
	dst = append(dst, opTruncate)
	return binary.LittleEndian.AppendUint64(dst, uint64(before))
}

// Result status codes in statemachine.Result.Value. Zero is left unused so
// that an unset Result never decodes as success.
const (
	statusAppended   = 1 // Data: base 8, count 4
	statusDuplicate  = 2 // Data: base 8, count 4
	statusOutOfOrder = 3 // Data: expected 8, got 8
	statusTooOld     = 4 // Data: last 8, got 8
	statusCorrupt    = 5 // Data: error text
	statusTruncated  = 6 // Data: log start 8
)

// AppendResult is the outcome of an applied entry.
type AppendResult struct {
	// Base is the first offset of the batch (for a truncate: the new LogStart).
	Base ids.Offset
	// Count is the number of records in the batch.
	Count uint32
	// Duplicate is true when the sequence was applied before; Base and Count
	// then describe the original append.
	Duplicate bool
}

func offsetsResult(status uint64, base ids.Offset, count uint32) statemachine.Result {
	d := binary.LittleEndian.AppendUint64(make([]byte, 0, 12), uint64(base))
	return statemachine.Result{Value: status, Data: binary.LittleEndian.AppendUint32(d, count)}
}

func pairResult(status uint64, a, b uint64) statemachine.Result {
	d := binary.LittleEndian.AppendUint64(make([]byte, 0, 16), a)
	return statemachine.Result{Value: status, Data: binary.LittleEndian.AppendUint64(d, b)}
}

func truncatedResult(logStart ids.Offset) statemachine.Result {
	return statemachine.Result{Value: statusTruncated, Data: binary.LittleEndian.AppendUint64(nil, uint64(logStart))}
}

func corruptResult(err error) statemachine.Result {
	return statemachine.Result{Value: statusCorrupt, Data: []byte(err.Error())}
}

// DecodeResult decodes the Result of an entry built by EncodeAppend or
// EncodeTruncate. Errors are ErrOutOfOrderSequence (as *SequenceError),
// ErrSequenceTooOld, ErrCorruptBatch or ErrBadResult.
func DecodeResult(r statemachine.Result) (AppendResult, error) {
	switch r.Value {
	case statusAppended, statusDuplicate:
		if len(r.Data) != 12 {
			break
		}
		return AppendResult{
			Base:      ids.Offset(binary.LittleEndian.Uint64(r.Data)),
			Count:     binary.LittleEndian.Uint32(r.Data[8:]),
			Duplicate: r.Value == statusDuplicate,
		}, nil
	case statusOutOfOrder, statusTooOld:
		if len(r.Data) != 16 {
			break
		}
		a, b := binary.LittleEndian.Uint64(r.Data), binary.LittleEndian.Uint64(r.Data[8:])
		if r.Value == statusOutOfOrder {
			return AppendResult{}, &SequenceError{Expected: a, Got: b}
		}
		return AppendResult{}, fmt.Errorf("%w: sequence %d, last applied %d", ErrSequenceTooOld, b, a)
	case statusCorrupt:
		return AppendResult{}, fmt.Errorf("%w: %s", ErrCorruptBatch, r.Data)
	case statusTruncated:
		if len(r.Data) != 8 {
			break
		}
		return AppendResult{Base: ids.Offset(binary.LittleEndian.Uint64(r.Data))}, nil
	}
	return AppendResult{}, fmt.Errorf("%w: status %d with %d bytes", ErrBadResult, r.Value, len(r.Data))
}

// command is a decoded entry.
type command struct {
	op         byte
	producerID uint64
	seq        uint64
	batch      []byte
	before     ids.Offset
}

var errMalformed = errors.New("malformed entry")

func decodeCommand(cmd []byte) (command, error) {
	if len(cmd) == 0 {
		return command{}, fmt.Errorf("%w: empty", errMalformed)
	}
	switch cmd[0] {
	case opAppend:
		if len(cmd) < appendHeaderSize {
			return command{}, fmt.Errorf("%w: append of %d bytes", errMalformed, len(cmd))
		}
		return command{
			op:         opAppend,
			producerID: binary.LittleEndian.Uint64(cmd[1:]),
			seq:        binary.LittleEndian.Uint64(cmd[9:]),
			batch:      cmd[appendHeaderSize:],
		}, nil
	case opTruncate:
		if len(cmd) != 9 {
			return command{}, fmt.Errorf("%w: truncate of %d bytes", errMalformed, len(cmd))
		}
		return command{op: opTruncate, before: ids.Offset(binary.LittleEndian.Uint64(cmd[1:]))}, nil
	}
	return command{}, fmt.Errorf("%w: unknown op %d", errMalformed, cmd[0])
}
