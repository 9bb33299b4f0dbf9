package segment

import "errors"

var (
	// ErrCorrupt reports a snapshot stream or stored value that is not well
	// formed. It is wrapped with the detail of what failed. A stored batch
	// that fails its header check is reported with batch.ErrCorrupt.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrStopped reports a snapshot export or import interrupted by its stop channel.
	ErrStopped = errors.New("segment: stopped")
)
