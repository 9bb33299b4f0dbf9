package segment

import "errors"

var (
	// ErrCorrupt reports bytes that are not a well-formed batch, snapshot
	// stream or stored value. It is wrapped with the detail of what failed.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrTooLarge reports a batch or record above a size limit.
	ErrTooLarge = errors.New("segment: too large")
	// ErrUnknownCodec reports a compression codec this version does not know.
	ErrUnknownCodec = errors.New("segment: unknown codec")
	// ErrEmptyBatch reports an attempt to encode a batch without records;
	// a batch always holds at least one record so that base offsets are unique.
	ErrEmptyBatch = errors.New("segment: empty batch")
	// ErrStopped reports a snapshot export or import interrupted by its stop channel.
	ErrStopped = errors.New("segment: stopped")
)
