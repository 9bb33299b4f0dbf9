package segment

import (
	"encoding/binary"
	"fmt"
	"shardlog/ids"
)

// Key tags, the byte after the 8-byte shard prefix.
const (
	tagRecord   = 'r'
	tagState    = 'm'
	tagProducer = 'p'
	// tagEnd is above every tag, so <shard> tagEnd bounds a shard's range.
	tagEnd = 0xff
)

func shardPrefix(shard ids.ShardID, tag byte) []byte {
	k := make([]byte, 9, 17)
	binary.BigEndian.PutUint64(k, uint64(shard))
	k[8] = tag
	return k
}

func recordKey(shard ids.ShardID, base ids.Offset) []byte {
	return binary.BigEndian.AppendUint64(shardPrefix(shard, tagRecord), uint64(base))
}

func stateKey(shard ids.ShardID) []byte { return shardPrefix(shard, tagState) }

func producerKey(shard ids.ShardID, pid uint64) []byte {
	return binary.BigEndian.AppendUint64(shardPrefix(shard, tagProducer), pid)
}

// shardBounds returns [start, end) covering every key of the shard.
func shardBounds(shard ids.ShardID) (start, end []byte) {
	return shardPrefix(shard, 0)[:8], shardPrefix(shard, tagEnd)
}

// recordBounds returns [start, end) covering the shard's record keys.
func recordBounds(shard ids.ShardID) (start, end []byte) {
	return shardPrefix(shard, tagRecord), shardPrefix(shard, tagRecord+1)
}

// recordBase extracts the base offset from a record key.
func recordBase(key []byte) (ids.Offset, error) {
	if len(key) != 17 || key[8] != tagRecord {
		return 0, fmt.Errorf("%w: record key %x", ErrCorrupt, key)
	}
	return ids.Offset(binary.BigEndian.Uint64(key[9:])), nil
}

// ShardState is a shard replica's per-shard metadata, written with every
// state machine Update.
type ShardState struct {
	// ReplicaID is the replica that wrote the state; a different replica of
	// the same shard on this node must not trust the data.
	ReplicaID ids.ReplicaID
	// AppliedIndex is the last Raft index applied.
	AppliedIndex uint64
	// NextOffset is the offset the next appended batch starts at.
	NextOffset ids.Offset
	// LogStart is the first offset still stored (retention moves it up).
	LogStart ids.Offset
}

const stateVersion = 1

func encodeState(st ShardState) []byte {
	b := make([]byte, 1, 33)
	b[0] = stateVersion
	b = binary.LittleEndian.AppendUint64(b, uint64(st.ReplicaID))
	b = binary.LittleEndian.AppendUint64(b, st.AppliedIndex)
	b = binary.LittleEndian.AppendUint64(b, uint64(st.NextOffset))
	return binary.LittleEndian.AppendUint64(b, uint64(st.LogStart))
}

func decodeState(b []byte) (ShardState, error) {
	if len(b) != 33 || b[0] != stateVersion {
		return ShardState{}, fmt.Errorf("%w: shard state of %d bytes", ErrCorrupt, len(b))
	}
	return ShardState{
		ReplicaID:    ids.ReplicaID(binary.LittleEndian.Uint64(b[1:])),
		AppliedIndex: binary.LittleEndian.Uint64(b[9:]),
		NextOffset:   ids.Offset(binary.LittleEndian.Uint64(b[17:])),
		LogStart:     ids.Offset(binary.LittleEndian.Uint64(b[25:])),
	}, nil
}

// RecentSequences is how many recent sequences a ProducerState remembers
// for duplicate detection.
const RecentSequences = 16

// SeqOffset records where one producer sequence was stored.
type SeqOffset struct {
	Seq   uint64
	Base  ids.Offset
	Count uint32
}

// ProducerState is the idempotence state of one producer on one shard.
type ProducerState struct {
	LastSeq uint64
	// Recent holds the latest sequences, newest last, at most RecentSequences.
	Recent []SeqOffset
}

const producerVersion = 1

func encodeProducer(st ProducerState) []byte {
	recent := st.Recent
	if len(recent) > RecentSequences {
		recent = recent[len(recent)-RecentSequences:]
	}
	b := make([]byte, 0, 10+20*len(recent))
	b = append(b, producerVersion)
	b = binary.LittleEndian.AppendUint64(b, st.LastSeq)
	b = append(b, byte(len(recent)))
	for _, r := range recent {
		b = binary.LittleEndian.AppendUint64(b, r.Seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Base))
		b = binary.LittleEndian.AppendUint32(b, r.Count)
	}
	return b
}

func decodeProducer(b []byte) (ProducerState, error) {
	if len(b) < 10 || b[0] != producerVersion || len(b) != 10+20*int(b[9]) || b[9] > RecentSequences {
		return ProducerState{}, fmt.Errorf("%w: producer state of %d bytes", ErrCorrupt, len(b))
	}
	st := ProducerState{LastSeq: binary.LittleEndian.Uint64(b[1:])}
	if n := int(b[9]); n > 0 {
		st.Recent = make([]SeqOffset, n)
		for i := range st.Recent {
			p := b[10+20*i:]
			st.Recent[i] = SeqOffset{
				Seq:   binary.LittleEndian.Uint64(p),
				Base:  ids.Offset(binary.LittleEndian.Uint64(p[8:])),
				Count: binary.LittleEndian.Uint32(p[16:]),
			}
		}
	}
	return st, nil
}
