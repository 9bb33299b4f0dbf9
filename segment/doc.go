// Package segment owns shardlog's on-disk store: the per-node Pebble DB that
// holds every shard replica on a node. The batches it keeps are in the wire
// format of package batch, stored exactly as produced.
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
