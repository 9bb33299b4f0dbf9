package segment

import (
	"errors"
	"shardlog/ids"
)

// RetentionPoint returns the base offset of the first batch to keep under
// the retention limits: batches from the first one whose MaxTimestamp >=
// olderThanMs on (time), and the newest batches totalling <= maxBytes
// (size); a limit of 0 is disabled. The newest batch is always kept. ok is
// false when nothing should be dropped. Passing base to a truncate command
// drops exactly the batches before it.
func (s *Store) RetentionPoint(shard ids.ShardID, olderThanMs, maxBytes int64) (base ids.Offset, ok bool, err error) {
	it, err := s.recordIter(s.db, shard)
	if err != nil {
		return 0, false, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	if !it.First() {
		return 0, false, it.Error()
	}
	firstBase, _, err := iterBatch(it)
	if err != nil {
		return 0, false, err
	}
	keep := firstBase
	if olderThanMs > 0 {
		// Forward: old data sits at the front, so this stops early.
		for valid := true; valid; valid = it.Next() {
			b, h, err := iterBatch(it)
			if err != nil {
				return 0, false, err
			}
			keep = b // the last batch is kept even when it is old
			if h.MaxTimestamp >= olderThanMs {
				break
			}
		}
		if err := it.Error(); err != nil {
			return 0, false, err
		}
	}
	if maxBytes > 0 {
		// Backward: the newest batches that fit, at least one.
		var total int64
		sizeKeep := ids.Offset(0)
		for valid := it.Last(); valid; valid = it.Prev() {
			b, h, err := iterBatch(it)
			if err != nil {
				return 0, false, err
			}
			if total > 0 && total+int64(h.Size) > maxBytes {
				break
			}
			total += int64(h.Size)
			sizeKeep = b
		}
		if err := it.Error(); err != nil {
			return 0, false, err
		}
		keep = max(keep, sizeKeep)
	}
	return keep, keep > firstBase, nil
}
