package chaos

import "fmt"

// checkReads compares every read with the final log (phantom reads, by value) and with
// what its producer sent (altered: key, headers, timestamp). A read below the shard's
// final log start (retention removed the record since) is compared with the record
// acknowledged at that offset, or must at least be a record some producer sent.
func (tc *topicCheck) checkReads() {
	r := tc.r
	ackAt := map[pos]string{}
	for _, a := range tc.acks {
		ackAt[pos{a.Shard, a.Offset}] = a.Value
	}
	for _, rd := range tc.reads {
		if s, ok := tc.sent[rd.Value]; ok && !s.rec.Equal(rd.Record) {
			r.Altered++
			tc.example("altered", "consumer %d read shard %d offset %d: %s", rd.Consumer, rd.Shard, rd.Offset, diff(s.rec, rd.Record))
		}
		sl := tc.final[rd.Shard]
		if sl != nil && rd.Offset < sl.start {
			want, acked := ackAt[pos{rd.Shard, rd.Offset}]
			_, sent := tc.sent[rd.Value]
			if (acked && want == rd.Value) || (!acked && sent) {
				continue
			}
			r.PhantomReads++
			tc.example("phantom_reads", "consumer %d read %s at shard %d offset %d (below the log start %d): acknowledged there was %q",
				rd.Consumer, rd.Value, rd.Shard, rd.Offset, sl.start, want)
			continue
		}
		var got Record
		var ok bool
		if sl != nil {
			got, ok = sl.records[rd.Offset]
		}
		if ok && got.Value == rd.Value {
			continue
		}
		r.PhantomReads++
		if !ok {
			tc.example("phantom_reads", "consumer %d read %s at shard %d offset %d: final log has no record there",
				rd.Consumer, rd.Value, rd.Shard, rd.Offset)
		} else {
			tc.example("phantom_reads", "consumer %d read %s at shard %d offset %d: final log holds %s",
				rd.Consumer, rd.Value, rd.Shard, rd.Offset, got.Value)
		}
	}
}

// checkReadGaps requires of every consumer of the topic that it read, in every shard,
// every offset in order from the start up to the last acknowledged one: each read is at
// the offset after the previous read, except that it may jump over offsets below the
// shard's final log start (removed by retention). The first gap of each (consumer, shard)
// is reported.
func (tc *topicCheck) checkReadGaps() {
	consumers := tc.spec.Consumers
	for _, rd := range tc.reads {
		consumers = max(consumers, rd.Consumer+1)
	}
	if consumers == 0 {
		return
	}
	type key struct {
		consumer int
		shard    uint32
	}
	byKey := map[key][]uint64{}
	for _, rd := range tc.reads {
		k := key{rd.Consumer, rd.Shard}
		byKey[k] = append(byKey[k], rd.Offset)
	}
	need := map[uint32]uint64{} // offset after the last acknowledged record
	for _, a := range tc.acks {
		need[a.Shard] = max(need[a.Shard], a.Offset+1)
	}
	shards := tc.spec.Shards
	for s := range need {
		shards = max(shards, s+1)
	}
	for c := range consumers {
		for s := range shards {
			var start uint64
			if sl := tc.final[s]; sl != nil {
				start = sl.start
			}
			if expected, got, ok := firstGap(byKey[key{c, s}], start, need[s]); !ok {
				tc.r.ReadGaps++
				tc.example("read_gaps", "consumer %d shard %d: expected offset %d, got %s", c, s, expected, got)
			}
		}
	}
}

// firstGap walks one consumer's reads of one shard (offsets in the order read). Reads
// must follow each other offset by offset; a jump is allowed only to an offset at or
// below start (all it skips was removed). After the last read the consumer must have
// reached need, unless everything before need lies below start. It returns the first
// offset expected and what came instead when that fails.
func firstGap(offsets []uint64, start, need uint64) (expected uint64, got string, ok bool) {
	var next uint64
	for _, off := range offsets {
		switch {
		case off == next:
		case off > next && off <= start:
		default:
			return next, fmt.Sprint(off), false
		}
		next = off + 1
	}
	if next < need && need > start {
		return max(next, start), fmt.Sprintf("no more reads (acknowledged up to %d)", need-1), false
	}
	return 0, "", true
}
