// Package shard runs the shard replicas of one node: the dragonboat on-disk
// state machine over a segment.Store, the Raft entry payloads proposers build,
// the results they decode, and the data path over them (Replicas).
//
// # Data path
//
// Replicas serves produce, fetch and retention for the replicas on this node.
// It reaches Raft only through the small Raft interface declared here
// (Propose, ReadIndex, IsLeader); node implements it over its dragonboat
// NodeHost and the tests of this package over a fake that applies entries to
// a real state machine. Produce encodes the append, passes the sequence gate,
// proposes, waits until the entry is committed and applied, and decodes the
// Result: it never answers before. Read serves applied data (Fetch), first
// confirming the commit point with a read index when the replica was picked
// as leader and the offset lies past what it applied. Retain proposes the
// truncate that retention asks for, on the leader only. node keeps the
// wiring, the proto conversion, forwarding and the gRPC codes.
//
// # Entries
//
// Every Raft entry of a data shard is one command, its first byte the op:
//
//	append:   0x01 producerID:8 LE  seq:8 LE  batch (segment format, never re-encoded)
//	truncate: 0x02 before:8 LE
//
// Append assigns the batch the shard's NextOffset as its base and advances
// NextOffset by the batch's record count, so offsets are dense. A non-zero
// producer ID makes the append idempotent per (producer, sequence): the
// state machine remembers each producer's last sequence and the offsets of
// its RecentSequences latest ones (see segment.ProducerState), answers a
// retried sequence with the original offsets, and refuses gaps. Truncate
// (retention) drops the batches that lie wholly before an offset.
//
// # Results
//
// Update sets each entry's Result; DecodeResult turns it into an
// AppendResult or one of the package's errors. Result.Value is a status
// code and Result.Data carries the offsets or the error detail.
//
// # Determinism and durability
//
// Update reads no clock and no randomness: its effect is a function of the
// log. Each Update call is one segment.WriteBatch (records, producer states
// and ShardState with the applied index) committed without fsync; dragonboat
// replays the Raft log after a crash and calls Sync before it compacts the
// log. After each commit the Hub wakes the fetchers waiting on the shard.
package shard
