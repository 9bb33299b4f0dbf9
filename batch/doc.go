// Package batch is shardlog's record batch wire format: encode, decode,
// validate, the compression codecs and their errors. It has no storage and
// no network in it, so clients link it without Pebble or Raft.
//
// A batch is the unit a client encodes, Raft replicates, the store keeps and a
// fetch returns; it is never re-encoded on the way. Encode builds one,
// Check verifies its fixed header and CRC32C cheaply (no decompression),
// Validate additionally decompresses it and walks every record against
// Limits, and Decode returns the records.
//
// The layout is a fixed 36-byte little-endian header followed by the payload:
//
//	off size field
//	  0    1 magic/version (0xB1 = version 1)
//	  1    4 CRC32C (Castagnoli) over bytes [5, end)
//	  5    1 codec (0 none, 1 s2, 2 zstd)
//	  6    1 flags (must be 0)
//	  7    1 reserved (must be 0)
//	  8    4 record count (>= 1)
//	 12    8 first timestamp (unix ms)
//	 20    8 max timestamp (unix ms)
//	 28    4 uncompressed payload length (<= MaxDecodedBytes)
//	 32    4 payload length (== len(batch) - 36)
//	 36    . payload, compressed with the codec
//
// The uncompressed payload is the records one after another, each as
// uvarint key length, key, uvarint value length, value, zigzag varint
// timestamp delta from the first timestamp, uvarint header count, then per
// header uvarint key length, key, uvarint value length, value. Empty keys,
// values and header values decode as nil.
package batch
