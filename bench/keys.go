package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Key distributions.
const (
	// KeysNone sends records without a key: the producer spreads them over shards
	// batch by batch (sticky round robin).
	KeysNone = "none"
	// KeysUniform draws keys uniformly from N distinct keys.
	KeysUniform = "uniform"
	// KeysZipf draws keys from N distinct keys with a Zipf distribution (s = ZipfS):
	// a few hot keys, a long tail.
	KeysZipf = "zipf"
)

// ZipfS is the exponent of the zipf key distribution.
const ZipfS = 1.1

// KeyDist is a key distribution: none, uniform:N or zipf:N.
type KeyDist struct {
	// Kind is KeysNone, KeysUniform or KeysZipf.
	Kind string
	// N is the number of distinct keys (uniform and zipf).
	N uint64
}

// ParseKeyDist parses "none", "uniform:N" or "zipf:N" (N ≥ 1).
func ParseKeyDist(s string) (KeyDist, error) {
	kind, n, hasN := strings.Cut(s, ":")
	switch {
	case kind == KeysNone && !hasN:
		return KeyDist{Kind: KeysNone}, nil
	case (kind == KeysUniform || kind == KeysZipf) && hasN:
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil || v == 0 {
			return KeyDist{}, fmt.Errorf("%w: --keys %q: N must be a positive integer", ErrUsage, s)
		}
		return KeyDist{Kind: kind, N: v}, nil
	}
	return KeyDist{}, fmt.Errorf("%w: --keys %q: want none, uniform:N or zipf:N", ErrUsage, s)
}

// String returns the distribution in ParseKeyDist's syntax.
func (d KeyDist) String() string {
	if d.Kind == "" || d.Kind == KeysNone {
		return KeysNone
	}
	return d.Kind + ":" + strconv.FormatUint(d.N, 10)
}

// KeyGen draws keys from a KeyDist. It is not safe for concurrent use.
type KeyGen struct {
	d    KeyDist
	rng  *rand.Rand
	zipf *rand.Zipf
}

// NewGen returns a key generator seeded with seed.
func (d KeyDist) NewGen(seed uint64) *KeyGen {
	g := &KeyGen{d: d, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if d.Kind == KeysZipf {
		g.zipf = rand.NewZipf(g.rng, ZipfS, 1, d.N-1)
	}
	return g
}

// Index returns the next key's index in [0, N), or -1 for no key.
func (g *KeyGen) Index() int64 {
	switch g.d.Kind {
	case KeysUniform:
		return int64(g.rng.Uint64N(g.d.N))
	case KeysZipf:
		return int64(g.zipf.Uint64())
	}
	return -1
}

// Next returns the next key ("k" and its index), or nil for no key.
func (g *KeyGen) Next() []byte {
	i := g.Index()
	if i < 0 {
		return nil
	}
	return strconv.AppendInt([]byte{'k'}, i, 10)
}
