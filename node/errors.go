package node

import (
	"context"
	"errors"

	"github.com/lni/dragonboat/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/meta"
	"shardlog/segment"
	"shardlog/shard"
)

var (
	// ErrNotReady is returned while the node has no view of the meta group yet.
	ErrNotReady = errors.New("node: starting, no metadata yet")
	// errNoLeader means no node is known to lead the shard right now.
	errNoLeader = errors.New("node: no leader known for the shard")
)

// toStatus maps every error that leaves the node to one gRPC status. It is the one
// table of API errors: handlers return domain errors and the interceptor calls this.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var me *meta.Error
	if errors.As(err, &me) {
		return status.Error(metaCode(me.Code), me.Msg)
	}
	var code codes.Code
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, dragonboat.ErrTimeout):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled), errors.Is(err, dragonboat.ErrCanceled):
		code = codes.Canceled
	case errors.Is(err, shard.ErrOffsetOutOfRange):
		code = codes.OutOfRange
	case errors.Is(err, shard.ErrOutOfOrderSequence):
		code = codes.Aborted
	case errors.Is(err, shard.ErrSequenceTooOld):
		code = codes.FailedPrecondition
	case errors.Is(err, shard.ErrCorruptBatch), errors.Is(err, batch.ErrCorrupt),
		errors.Is(err, segment.ErrCorrupt), errors.Is(err, batch.ErrTooLarge):
		code = codes.InvalidArgument
	case errors.Is(err, dragonboat.ErrSystemBusy):
		code = codes.ResourceExhausted
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotReady), errors.Is(err, errNoLeader),
		errors.Is(err, shard.ErrRecovering), errors.Is(err, shard.ErrShardNotFound),
		errors.Is(err, shard.ErrLogEndUnconfirmed),
		errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrShardNotFound),
		errors.Is(err, dragonboat.ErrShardClosed), errors.Is(err, dragonboat.ErrClosed),
		errors.Is(err, dragonboat.ErrShardNotInitialized), errors.Is(err, dragonboat.ErrAborted),
		errors.Is(err, dragonboat.ErrRejected):
		code = codes.Unavailable
	default:
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}

func metaCode(c meta.Code) codes.Code {
	switch c {
	case meta.CodeInvalidArgument:
		return codes.InvalidArgument
	case meta.CodeNotFound:
		return codes.NotFound
	case meta.CodeAlreadyExists:
		return codes.AlreadyExists
	case meta.CodeFailedPrecondition:
		return codes.FailedPrecondition
	case meta.CodeResourceExhausted:
		return codes.ResourceExhausted
	default:
		return codes.Internal
	}
}

// retryable reports whether an attempt that failed with err may be tried again
// within the same request: nothing was appended, or the outcome is unknown and the
// caller deduplicates (dedupe is true when the request carries a producer ID).
func retryable(err error, dedupe bool) bool {
	if isDiskFull(err) {
		return false // stays so until space is freed; the client retries with its backoff
	}
	switch status.Code(toStatus(err)) {
	case codes.Unavailable, codes.ResourceExhausted:
		return true
	case codes.DeadlineExceeded:
		// A timed-out attempt may still commit: only a deduplicated request may retry.
		return dedupe && !errors.Is(err, context.DeadlineExceeded)
	}
	return false
}
