package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"shardlog/ids"

	"github.com/cockroachdb/pebble/v2"
)

// The snapshot stream of one shard:
//
//	"SLSNAP01"
//	repeated: uvarint len(key suffix) >= 1, key suffix, uvarint len(value), value
//	0x00 (end marker)
//	uint64 LE entry count
//	uint32 LE CRC32C of every byte before it
//
// Keys are stored without the 8-byte shard prefix, so the stream can be
// loaded under any shard ID.
const snapshotMagic = "SLSNAP01"

// castagnoli is the CRC32C table of the snapshot trailer.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	// maxSnapshotKey and maxSnapshotValue bound allocations on a corrupt stream.
	maxSnapshotKey   = 1 << 10
	maxSnapshotValue = 256 << 20
	// importBatchBytes bounds the memory an import holds before committing.
	importBatchBytes = 4 << 20
)

// Snapshot is a point-in-time view of the whole store, from which shards are
// exported while writes continue.
type Snapshot struct {
	snap *pebble.Snapshot
	s    *Store
}

// NewSnapshot captures the store's current state. Close it when done.
func (s *Store) NewSnapshot() *Snapshot { return &Snapshot{snap: s.db.NewSnapshot(), s: s} }

// Close releases the snapshot.
func (sn *Snapshot) Close() error { return sn.snap.Close() }

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// Export streams every key of the shard, as of the snapshot, to w. It
// returns ErrStopped when stop is closed first.
func (sn *Snapshot) Export(shard ids.ShardID, w io.Writer, stop <-chan struct{}) (err error) {
	lo, hi := shardBounds(shard)
	it, err := sn.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	var scratch [2 * binary.MaxVarintLen64]byte
	_, _ = bw.WriteString(snapshotMagic)
	var count uint64
	for valid := it.First(); valid; valid = it.Next() {
		if stopped(stop) {
			return ErrStopped
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		suffix := it.Key()[8:]
		n := binary.PutUvarint(scratch[:], uint64(len(suffix)))
		_, _ = bw.Write(scratch[:n])
		_, _ = bw.Write(suffix)
		n = binary.PutUvarint(scratch[:], uint64(len(v)))
		_, _ = bw.Write(scratch[:n])
		if _, err := bw.Write(v); err != nil {
			return fmt.Errorf("segment: export shard %d: %w", shard, err)
		}
		count++
	}
	if err := it.Error(); err != nil {
		return err
	}
	_ = bw.WriteByte(0)
	_, _ = bw.Write(binary.LittleEndian.AppendUint64(nil, count))
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("segment: export shard %d: %w", shard, err)
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return fmt.Errorf("segment: export shard %d: %w", shard, err)
	}
	return nil
}

// Import replaces the shard's keys with a stream written by Export: it
// deletes the shard's range, loads the stream, writes the state key last and
// syncs. On any error the shard is left without data or state.
func (s *Store) Import(shard ids.ShardID, r io.Reader, stop <-chan struct{}) error {
	return s.ImportAs(shard, 0, r, stop)
}

// ImportAs is Import, except that a non-zero replicaID replaces the
// ReplicaID in the imported state: a replica recovering a snapshot streamed
// from a peer must record itself as the owner.
func (s *Store) ImportAs(shard ids.ShardID, replicaID ids.ReplicaID, r io.Reader, stop <-chan struct{}) error {
	state, err := s.load(shard, r, stop)
	if err == nil {
		if replicaID != 0 {
			state.ReplicaID = replicaID
		}
		wb := s.NewWriteBatch()
		wb.PutState(shard, state)
		err = wb.Commit(true)
		wb.Close()
	}
	if err != nil {
		lo, hi := shardBounds(shard)
		if derr := s.db.DeleteRange(lo, hi, withSync); derr != nil {
			s.log.Error("clearing shard after failed import", "shard", shard, "err", derr)
		}
		if !errors.Is(err, ErrStopped) {
			err = fmt.Errorf("segment: import shard %d: %w", shard, err)
		}
		return err
	}
	return nil
}

// snapshotReader reads the stream while hashing what it consumed.
type snapshotReader struct {
	br  *bufio.Reader
	crc uint32
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	b, err := sr.br.ReadByte()
	if err == nil {
		sr.crc = crc32.Update(sr.crc, castagnoli, []byte{b})
	}
	return b, err
}

func (sr *snapshotReader) full(n uint64, limit uint64, what string) ([]byte, error) {
	if n > limit {
		return nil, fmt.Errorf("%w: snapshot %s of %d bytes", ErrCorrupt, what, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(sr.br, b); err != nil {
		return nil, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, what, err)
	}
	sr.crc = crc32.Update(sr.crc, castagnoli, b)
	return b, nil
}

func (sr *snapshotReader) uvarint(what string) (uint64, error) {
	v, err := binary.ReadUvarint(sr)
	if err != nil {
		return 0, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, what, err)
	}
	return v, nil
}

// load deletes the shard's keys and writes the stream's keys except the
// state, which it returns once the whole stream checked out.
func (s *Store) load(shard ids.ShardID, r io.Reader, stop <-chan struct{}) (ShardState, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, 256<<10)}
	magic, err := sr.full(uint64(len(snapshotMagic)), uint64(len(snapshotMagic)), "magic")
	if err != nil {
		return ShardState{}, err
	}
	if string(magic) != snapshotMagic {
		return ShardState{}, fmt.Errorf("%w: snapshot magic %q", ErrCorrupt, magic)
	}
	lo, hi := shardBounds(shard)
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.DeleteRange(lo, hi, nil)
	var (
		state    ShardState
		hasState bool
		count    uint64
	)
	for {
		if stopped(stop) {
			return ShardState{}, ErrStopped
		}
		suffix, v, end, err := sr.entry()
		if err != nil {
			return ShardState{}, err
		}
		if end {
			break
		}
		count++
		if len(suffix) == 1 && suffix[0] == tagState {
			if state, err = decodeState(v); err != nil {
				return ShardState{}, err
			}
			hasState = true
			continue
		}
		_ = b.Set(append(shardPrefix(shard, 0)[:8], suffix...), v, nil)
		if b.Len() >= importBatchBytes {
			if err := b.Commit(noSync); err != nil {
				return ShardState{}, err
			}
			_ = b.Close()
			b = s.db.NewBatch()
		}
	}
	if err := sr.trailer(count); err != nil {
		return ShardState{}, err
	}
	if !hasState {
		return ShardState{}, fmt.Errorf("%w: snapshot has no shard state", ErrCorrupt)
	}
	if err := b.Commit(noSync); err != nil {
		return ShardState{}, err
	}
	return state, nil
}

// entry reads the next key suffix and value of a snapshot; end is true at the
// zero key length that ends the entries.
func (sr *snapshotReader) entry() (suffix, value []byte, end bool, err error) {
	kl, err := sr.uvarint("key length")
	if err != nil {
		return nil, nil, false, err
	}
	if kl == 0 {
		return nil, nil, true, nil
	}
	if suffix, err = sr.full(kl, maxSnapshotKey, "key"); err != nil {
		return nil, nil, false, err
	}
	vl, err := sr.uvarint("value length")
	if err != nil {
		return nil, nil, false, err
	}
	if value, err = sr.full(vl, maxSnapshotValue, "value"); err != nil {
		return nil, nil, false, err
	}
	return suffix, value, false, nil
}

// trailer reads what follows the entries, the entry count and the CRC of
// everything before the CRC, and checks both against what was read.
func (sr *snapshotReader) trailer(count uint64) error {
	tail, err := sr.full(8, 8, "entry count")
	if err != nil {
		return err
	}
	if n := binary.LittleEndian.Uint64(tail); n != count {
		return fmt.Errorf("%w: snapshot holds %d entries, trailer says %d", ErrCorrupt, count, n)
	}
	want := sr.crc // NB: taken before the CRC bytes, which are read past sr
	var crcBuf [4]byte
	if _, err := io.ReadFull(sr.br, crcBuf[:]); err != nil {
		return fmt.Errorf("%w: snapshot crc: %w", ErrCorrupt, err)
	}
	if got := binary.LittleEndian.Uint32(crcBuf[:]); got != want {
		return fmt.Errorf("%w: snapshot crc mismatch (stored %08x, computed %08x)", ErrCorrupt, got, want)
	}
	return nil
}
