package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Codec is the compression applied to a batch's payload.
type Codec uint8

const (
	// CodecNone stores the payload uncompressed.
	CodecNone Codec = 0
	// CodecS2 compresses the payload with klauspost/compress s2.
	CodecS2 Codec = 1
	// CodecZstd compresses the payload with klauspost/compress zstd.
	CodecZstd Codec = 2
)

// ParseCodec parses a codec name: "none" (or ""), "s2" or "zstd".
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "", "none":
		return CodecNone, nil
	case "s2":
		return CodecS2, nil
	case "zstd":
		return CodecZstd, nil
	}
	return 0, fmt.Errorf("%w: %q (want none, s2 or zstd)", ErrUnknownCodec, s)
}

// String returns the codec's name as accepted by ParseCodec.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecS2:
		return "s2"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

func (c Codec) valid() bool { return c <= CodecZstd }

// Header is one record header: a key and an optional value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one entry of a batch. Its offset is not stored in it: offsets
// are assigned to the whole batch when the batch is applied to a shard.
type Record struct {
	Key, Value []byte
	Headers    []Header
	// Timestamp is the record time in unix milliseconds.
	Timestamp int64
}

// Info is what a batch header says about the batch.
type Info struct {
	Codec Codec
	// Count is the number of records; offsets base..base+Count-1 belong to it.
	Count          uint32
	FirstTimestamp int64
	MaxTimestamp   int64
	// Size is the encoded size of the batch in bytes.
	Size int
}

// Limits bounds what Validate accepts. A zero field takes its default.
type Limits struct {
	MaxBatchBytes      int
	MaxRecordBytes     int
	MaxRecordsPerBatch int
}

// DefaultLimits returns 8 MiB batches, 1 MiB records and 1<<20 records per batch.
func DefaultLimits() Limits {
	return Limits{MaxBatchBytes: 8 << 20, MaxRecordBytes: 1 << 20, MaxRecordsPerBatch: 1 << 20}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.MaxRecordBytes <= 0 {
		l.MaxRecordBytes = d.MaxRecordBytes
	}
	if l.MaxRecordsPerBatch <= 0 {
		l.MaxRecordsPerBatch = d.MaxRecordsPerBatch
	}
	return l
}

const (
	// MaxDecodedBytes caps a batch's declared uncompressed payload, so that a
	// compression bomb cannot make a decoder allocate without bound.
	MaxDecodedBytes = 64 << 20

	// HeaderSize is the size of the fixed batch header.
	HeaderSize = 36

	batchMagic = 0xB1 // high nibble: format tag, low nibble: version 1

	offMagic    = 0
	offCRC      = 1
	offCodec    = 5
	offFlags    = 6
	offReserved = 7
	offCount    = 8
	offFirstTS  = 12
	offMaxTS    = 20
	offRawLen   = 28
	offPayLen   = 32

	// minRecordBytes is the smallest encoded record: four one-byte varints.
	minRecordBytes = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded fixed header.
type header struct {
	crc      uint32
	codec    Codec
	count    uint32
	firstTS  int64
	maxTS    int64
	rawLen   uint32
	payLen   uint32
	batchLen int
}

func (h header) info() Info {
	return Info{Codec: h.codec, Count: h.count, FirstTimestamp: h.firstTS, MaxTimestamp: h.maxTS, Size: h.batchLen}
}

// parseHeader checks everything in the header that can be checked without
// the CRC or the payload.
func parseHeader(b []byte) (header, error) {
	if len(b) < HeaderSize {
		return header{}, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(b), HeaderSize)
	}
	if b[offMagic] != batchMagic {
		return header{}, fmt.Errorf("%w: bad magic %#02x", ErrCorrupt, b[offMagic])
	}
	h := header{
		crc:      binary.LittleEndian.Uint32(b[offCRC:]),
		codec:    Codec(b[offCodec]),
		count:    binary.LittleEndian.Uint32(b[offCount:]),
		firstTS:  int64(binary.LittleEndian.Uint64(b[offFirstTS:])),
		maxTS:    int64(binary.LittleEndian.Uint64(b[offMaxTS:])),
		rawLen:   binary.LittleEndian.Uint32(b[offRawLen:]),
		payLen:   binary.LittleEndian.Uint32(b[offPayLen:]),
		batchLen: len(b),
	}
	switch {
	case !h.codec.valid():
		return header{}, fmt.Errorf("%w: %w %d", ErrCorrupt, ErrUnknownCodec, b[offCodec])
	case b[offFlags] != 0 || b[offReserved] != 0:
		return header{}, fmt.Errorf("%w: unknown flags %#02x %#02x", ErrCorrupt, b[offFlags], b[offReserved])
	case uint64(h.payLen) != uint64(len(b)-HeaderSize):
		return header{}, fmt.Errorf("%w: payload length %d, have %d bytes", ErrCorrupt, h.payLen, len(b)-HeaderSize)
	case h.rawLen > MaxDecodedBytes:
		return header{}, fmt.Errorf("%w: declared uncompressed size %d above %d", ErrTooLarge, h.rawLen, MaxDecodedBytes)
	case h.codec == CodecNone && h.rawLen != h.payLen:
		return header{}, fmt.Errorf("%w: uncompressed size %d != payload size %d", ErrCorrupt, h.rawLen, h.payLen)
	case h.count == 0:
		return header{}, fmt.Errorf("%w: zero records", ErrCorrupt)
	case uint64(h.count)*minRecordBytes > uint64(h.rawLen):
		return header{}, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorrupt, h.count, h.rawLen)
	case h.maxTS < h.firstTS:
		return header{}, fmt.Errorf("%w: max timestamp %d before first %d", ErrCorrupt, h.maxTS, h.firstTS)
	}
	return h, nil
}

// ReadHeader reads a batch's header (record count, codec, timestamps) without the
// CRC pass over the payload: for batches already checked when they were applied,
// such as stored batches a server streams on.
func ReadHeader(b []byte) (Info, error) {
	h, err := parseHeader(b)
	if err != nil {
		return Info{}, err
	}
	return h.info(), nil
}

// Check checks the header and the CRC32C of a batch without
// decompressing it. It is cheap enough for every apply.
func Check(b []byte) (Info, error) {
	h, err := parseHeader(b)
	if err != nil {
		return Info{}, err
	}
	if got := crc32.Checksum(b[offCodec:], castagnoli); got != h.crc {
		return Info{}, fmt.Errorf("%w: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, h.crc, got)
	}
	return h.info(), nil
}

// Validate is Check plus the limits, decompression and a
// bounds-checked walk over every record; it keeps no records.
func Validate(b []byte, l Limits) (Info, error) {
	l = l.withDefaults()
	if len(b) > l.MaxBatchBytes {
		return Info{}, fmt.Errorf("%w: batch of %d bytes above the %d-byte limit", ErrTooLarge, len(b), l.MaxBatchBytes)
	}
	info, err := Check(b)
	if err != nil {
		return Info{}, err
	}
	if uint64(info.Count) > uint64(l.MaxRecordsPerBatch) {
		return Info{}, fmt.Errorf("%w: %d records above the limit of %d per batch", ErrTooLarge, info.Count, l.MaxRecordsPerBatch)
	}
	h, _ := parseHeader(b)
	buf := getBuf(int(h.rawLen))
	defer putBuf(buf)
	raw, err := decompress(h, b[HeaderSize:], (*buf)[:0])
	if err != nil {
		return Info{}, err
	}
	*buf = raw[:0]
	rd := recordReader{raw: raw, first: h.firstTS}
	var rec Record
	maxTS := int64(math.MinInt64)
	for i := uint32(0); i < h.count; i++ {
		if err := rd.next(&rec, i); err != nil {
			return Info{}, err
		}
		if n := rd.recBytes; n > l.MaxRecordBytes {
			return Info{}, fmt.Errorf("%w: record %d is %d bytes, above the %d-byte limit", ErrTooLarge, i, n, l.MaxRecordBytes)
		}
		maxTS = max(maxTS, rec.Timestamp)
	}
	if err := rd.finish(maxTS, h.maxTS); err != nil {
		return Info{}, err
	}
	return info, nil
}

// Decode verifies and decodes a batch. The records' byte slices share
// one freshly allocated buffer and never alias b.
func Decode(b []byte) ([]Record, error) {
	if _, err := Check(b); err != nil {
		return nil, err
	}
	h, _ := parseHeader(b)
	raw, err := decompress(h, b[HeaderSize:], make([]byte, 0, h.rawLen))
	if err != nil {
		return nil, err
	}
	recs := make([]Record, h.count)
	rd := recordReader{raw: raw, first: h.firstTS, keep: true}
	maxTS := int64(math.MinInt64)
	for i := range recs {
		if err := rd.next(&recs[i], uint32(i)); err != nil {
			return nil, err
		}
		maxTS = max(maxTS, recs[i].Timestamp)
	}
	if err := rd.finish(maxTS, h.maxTS); err != nil {
		return nil, err
	}
	return recs, nil
}

// Encode appends the batch holding recs, compressed with codec, to dst.
func Encode(dst []byte, recs []Record, codec Codec) ([]byte, error) {
	if !codec.valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, uint8(codec))
	}
	if len(recs) == 0 {
		return dst, ErrEmpty
	}
	if uint64(len(recs)) > math.MaxUint32 {
		return dst, fmt.Errorf("%w: %d records in one batch", ErrTooLarge, len(recs))
	}
	first, maxTS := recs[0].Timestamp, recs[0].Timestamp
	rawLen := 0
	for i := range recs {
		maxTS = max(maxTS, recs[i].Timestamp)
		rawLen += encodedRecordSize(&recs[i], first)
		if rawLen > MaxDecodedBytes {
			return dst, fmt.Errorf("%w: records exceed %d uncompressed bytes", ErrTooLarge, MaxDecodedBytes)
		}
	}
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	if codec == CodecNone {
		dst = appendRecords(dst, recs, first)
	} else {
		buf := getBuf(rawLen)
		raw := appendRecords((*buf)[:0], recs, first)
		dst = compress(codec, dst, raw)
		*buf = raw[:0]
		putBuf(buf)
	}
	hdr := dst[start : start+HeaderSize]
	hdr[offMagic] = batchMagic
	hdr[offCodec] = byte(codec)
	binary.LittleEndian.PutUint32(hdr[offCount:], uint32(len(recs)))
	binary.LittleEndian.PutUint64(hdr[offFirstTS:], uint64(first))
	binary.LittleEndian.PutUint64(hdr[offMaxTS:], uint64(maxTS))
	binary.LittleEndian.PutUint32(hdr[offRawLen:], uint32(rawLen))
	binary.LittleEndian.PutUint32(hdr[offPayLen:], uint32(len(dst)-start-HeaderSize))
	binary.LittleEndian.PutUint32(hdr[offCRC:], crc32.Checksum(dst[start+offCodec:], castagnoli))
	return dst, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func encodedRecordSize(r *Record, first int64) int {
	d := r.Timestamp - first
	n := uvarintLen(uint64(len(r.Key))) + len(r.Key) +
		uvarintLen(uint64(len(r.Value))) + len(r.Value) +
		uvarintLen(uint64(d<<1)^uint64(d>>63)) +
		uvarintLen(uint64(len(r.Headers)))
	for _, h := range r.Headers {
		n += uvarintLen(uint64(len(h.Key))) + len(h.Key) + uvarintLen(uint64(len(h.Value))) + len(h.Value)
	}
	return n
}

func appendRecords(dst []byte, recs []Record, first int64) []byte {
	for i := range recs {
		r := &recs[i]
		dst = binary.AppendUvarint(dst, uint64(len(r.Key)))
		dst = append(dst, r.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
		dst = append(dst, r.Value...)
		dst = binary.AppendVarint(dst, r.Timestamp-first)
		dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
		for _, h := range r.Headers {
			dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
			dst = append(dst, h.Value...)
		}
	}
	return dst
}

// recordReader walks the uncompressed payload with bounds checks.
type recordReader struct {
	raw   []byte
	pos   int
	first int64
	// keep makes records own fresh header slices; otherwise one record's
	// Headers backing array is reused between calls.
	keep bool
	// recBytes is the size of the last record's keys and values.
	recBytes int
}

func (rd *recordReader) uvarint(i uint32, what string) (uint64, error) {
	v, n := binary.Uvarint(rd.raw[rd.pos:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: record %d: bad %s varint at payload byte %d", ErrCorrupt, i, what, rd.pos)
	}
	rd.pos += n
	return v, nil
}

func (rd *recordReader) bytes(i uint32, what string) ([]byte, error) {
	n, w := binary.Uvarint(rd.raw[rd.pos:])
	if w <= 0 {
		return nil, fmt.Errorf("%w: record %d: bad %s length varint at payload byte %d", ErrCorrupt, i, what, rd.pos)
	}
	rd.pos += w
	if n > uint64(len(rd.raw)-rd.pos) {
		return nil, fmt.Errorf("%w: record %d: %s of %d bytes overruns the payload", ErrCorrupt, i, what, n)
	}
	if n == 0 {
		return nil, nil
	}
	end := rd.pos + int(n)
	rd.recBytes += int(n)
	b := rd.raw[rd.pos:end:end]
	rd.pos = end
	return b, nil
}

func (rd *recordReader) next(r *Record, i uint32) (err error) {
	rd.recBytes = 0
	if r.Key, err = rd.bytes(i, "key"); err != nil {
		return err
	}
	if r.Value, err = rd.bytes(i, "value"); err != nil {
		return err
	}
	d, n := binary.Varint(rd.raw[rd.pos:])
	if n <= 0 {
		return fmt.Errorf("%w: record %d: bad timestamp varint", ErrCorrupt, i)
	}
	rd.pos += n
	if i == 0 && d != 0 {
		return fmt.Errorf("%w: first record's timestamp differs from the header's", ErrCorrupt)
	}
	r.Timestamp = rd.first + d
	nh, err := rd.uvarint(i, "header count")
	if err != nil {
		return err
	}
	// Every header takes at least two bytes, which bounds the allocation.
	if nh > uint64(len(rd.raw)-rd.pos)/2 {
		return fmt.Errorf("%w: record %d: %d headers cannot fit in the payload", ErrCorrupt, i, nh)
	}
	if nh == 0 {
		if rd.keep {
			r.Headers = nil
		} else {
			r.Headers = r.Headers[:0] // keep the capacity for the next record
		}
		return nil
	}
	if rd.keep || cap(r.Headers) < int(nh) {
		r.Headers = make([]Header, nh)
	}
	r.Headers = r.Headers[:nh]
	for j := range r.Headers {
		k, err := rd.bytes(i, "header key")
		if err != nil {
			return err
		}
		v, err := rd.bytes(i, "header value")
		if err != nil {
			return err
		}
		if rd.keep {
			r.Headers[j] = Header{Key: string(k), Value: v}
		} else {
			r.Headers[j] = Header{Value: v} // recBytes counted the key; validation needs no more
		}
	}
	return nil
}

func (rd *recordReader) finish(gotMax, wantMax int64) error {
	if rd.pos != len(rd.raw) {
		return fmt.Errorf("%w: %d trailing payload bytes", ErrCorrupt, len(rd.raw)-rd.pos)
	}
	if gotMax != wantMax {
		return fmt.Errorf("%w: header max timestamp %d, records say %d", ErrCorrupt, wantMax, gotMax)
	}
	return nil
}
