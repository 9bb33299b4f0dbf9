// Package segment owns shardlog's on-disk format: the record batch codec and
// the per-node Pebble store that holds every shard replica on a node.
//
// # Batches
//
// A batch is the unit a client encodes, Raft replicates, the store keeps and a
// fetch returns; it is never re-encoded on the way. EncodeBatch builds one,
// CheckBatch verifies its fixed header and CRC32C cheaply (no decompression),
// ValidateBatch additionally decompresses it and walks every record against
// Limits, and DecodeBatch returns the records.
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
//
// # Store
//
// One Pebble (v2) DB per node holds every shard replica; every key starts with
// the 8-byte big-endian shard ID, so one range covers a whole shard:
//
//	<shard:8 BE> 'r' <baseOffset:8 BE>  -> batch bytes exactly as produced
//	<shard:8 BE> 'm'                    -> ShardState
//	<shard:8 BE> 'p' <producerID:8 BE>  -> ProducerState
//
// Writes go through a WriteBatch, one per state machine Update, committed
// without fsync by default: the Raft log is the durable copy and Sync fsyncs
// the shared WAL when dragonboat asks for it. Snapshot exports one shard's
// keys as a checksummed stream and Store.Import loads one, writing the state
// key last.
package segment
