package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// ErrUsage reports bad flags or an impossible configuration.
var ErrUsage = errors.New("bench: usage")

// stampSize is the length of the send time (Unix nanoseconds, big endian) that starts
// every value of at least that size.
const stampSize = 8

// Payload makes record values of a fixed size whose compressibility is chosen: the
// first (1-compressibility)*size bytes are random (the first 8 of them are the send
// time), the rest are zeros, so a compressor shrinks a value to about
// 1-compressibility of its size. It is not safe for concurrent use.
type Payload struct {
	size   int
	random int // bytes of random data, including the stamp
	rng    *rand.ChaCha8
}

// NewPayload returns a generator of size-byte values; compressibility is in [0, 1]
// (0: incompressible). seed makes the random bytes reproducible.
func NewPayload(size int, compressibility float64, seed uint64) (*Payload, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: record size %d is negative", ErrUsage, size)
	}
	if math.IsNaN(compressibility) || compressibility < 0 || compressibility > 1 {
		return nil, fmt.Errorf("%w: compressibility %v is outside 0..1", ErrUsage, compressibility)
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	random := int(math.Round((1 - compressibility) * float64(size)))
	return &Payload{size: size, random: random, rng: rand.NewChaCha8(s)}, nil
}

// Size returns the value size.
func (p *Payload) Size() int { return p.size }

// Next returns a new value stamped with sent (when the value has room for a stamp).
func (p *Payload) Next(sent time.Time) []byte {
	v := make([]byte, p.size)
	_, _ = p.rng.Read(v[:p.random]) // ChaCha8.Read never fails
	if p.size >= stampSize {
		binary.BigEndian.PutUint64(v, uint64(sent.UnixNano()))
	}
	return v
}

// SentAt returns the send time stamped into a value made by a Payload, and false when
// the value is too short to hold one.
func SentAt(v []byte) (time.Time, bool) {
	if len(v) < stampSize {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), true
}
