package client

import (
	"hash/fnv"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Backoff bounds for retryable errors: the delay doubles per attempt between them.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// backoff returns the delay before retry number attempt (1 = first retry): exponential
// from minBackoff to maxBackoff, with up to 20% random jitter so that many producers
// do not retry in lockstep.
func backoff(attempt int) time.Duration {
	d := minBackoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// retryable reports whether a produce or fetch error may succeed when the same request
// is sent again. Produce retries are safe because the server dedupes (producer, sequence).
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted,
		codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// ShardForKey returns the shard a key routes to: FNV-1a 32 of the key modulo shards.
// Servers and other clients use the same function.
func ShardForKey(key []byte, shards uint32) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(key)
	return h.Sum32() % shards
}

// newProducerID returns a random non-zero producer ID (0 turns deduplication off).
func newProducerID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}
