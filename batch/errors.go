package batch

import "errors"

var (
	// ErrCorrupt reports bytes that are not a well-formed batch. It is
	// wrapped with the detail of what failed.
	ErrCorrupt = errors.New("batch: corrupt")
	// ErrTooLarge reports a batch or record above a size limit.
	ErrTooLarge = errors.New("batch: too large")
	// ErrUnknownCodec reports a compression codec this version does not know.
	ErrUnknownCodec = errors.New("batch: unknown codec")
	// ErrEmpty reports an attempt to encode a batch without records; a batch
	// always holds at least one record so that base offsets are unique.
	ErrEmpty = errors.New("batch: no records")
)
