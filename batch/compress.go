package batch

import (
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// The zstd encoder's EncodeAll and the decoder's DecodeAll are safe for
// concurrent use, so one of each serves the whole process.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(4))
		if err != nil {
			panic(fmt.Sprintf("segment: zstd encoder: %v", err)) // only bad options fail
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(4),
			zstd.WithDecoderMaxMemory(MaxDecodedBytes),
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			panic(fmt.Sprintf("segment: zstd decoder: %v", err)) // only bad options fail
		}
		return d
	})
)

// maxPooledBuf keeps scratch buffers of huge batches out of the pool.
const maxPooledBuf = 16 << 20

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// getBuf returns a scratch buffer with capacity for at least n bytes.
func getBuf(n int) *[]byte {
	b := bufPool.Get().(*[]byte)
	*b = slices.Grow((*b)[:0], n)
	return b
}

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bufPool.Put(b)
	}
}

// compress appends raw compressed with codec (s2 or zstd) to dst.
func compress(codec Codec, dst, raw []byte) []byte {
	switch codec {
	case CodecS2:
		n := s2.MaxEncodedLen(len(raw))
		off := len(dst)
		dst = slices.Grow(dst, n)
		enc := s2.Encode(dst[off:off+n], raw)
		return dst[:off+len(enc)]
	case CodecZstd:
		return zstdEncoder().EncodeAll(raw, dst)
	}
	return append(dst, raw...)
}

// decompress appends the uncompressed payload to dst (len 0) and checks that
// it has exactly the declared length, which parseHeader capped.
func decompress(h header, payload, dst []byte) ([]byte, error) {
	dst = slices.Grow(dst[:0], int(h.rawLen))
	var out []byte
	switch h.codec {
	case CodecNone:
		out = append(dst, payload...)
	case CodecS2:
		n, err := s2.DecodedLen(payload)
		if err != nil {
			return nil, fmt.Errorf("%w: s2: %v", ErrCorrupt, err)
		}
		if n != int(h.rawLen) {
			return nil, fmt.Errorf("%w: s2 length %d, header says %d", ErrCorrupt, n, h.rawLen)
		}
		if out, err = s2.Decode(dst[:n], payload); err != nil {
			return nil, fmt.Errorf("%w: s2: %v", ErrCorrupt, err)
		}
	case CodecZstd:
		// NB: with WithDecodeAllCapLimit the decoder refuses to grow dst, so a
		// frame that expands beyond the declared length fails instead of
		// allocating.
		var err error
		if out, err = zstdDecoder().DecodeAll(payload, dst[:0:h.rawLen]); err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(h.codec))
	}
	if len(out) != int(h.rawLen) {
		return nil, fmt.Errorf("%w: payload decompressed to %d bytes, header says %d", ErrCorrupt, len(out), h.rawLen)
	}
	return out, nil
}
