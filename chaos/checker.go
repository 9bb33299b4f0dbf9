package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxExamples is how many examples of each violation a Report keeps.
const maxExamples = 5

// pos is a place in a topic's log.
type pos struct {
	shard  uint32
	offset uint64
}

// ParseValue splits a workload value "p<producer>-<seq>" into its parts.
func ParseValue(v string) (producer int, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(v, "p")
	if !found {
		return 0, 0, false
	}
	ps, ss, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(ps)
	s, err2 := strconv.ParseUint(ss, 10, 64)
	if err1 != nil || err2 != nil || p < 0 {
		return 0, 0, false
	}
	return p, s, true
}

// Value returns the workload value of a producer's record with sequence seq.
func Value(producer int, seq uint64) string { return fmt.Sprintf("p%d-%d", producer, seq) }

// sentRec is what a producer sent: the record, and whether it was acknowledged.
type sentRec struct {
	rec   Record
	acked bool
}

// topicCheck checks one topic's part of a History.
type topicCheck struct {
	h     *History // the whole history (faults, nodes, bound, read time)
	spec  TopicSpec
	acks  []Ack
	fails []Failed
	reads []Read
	logs  []ReplicaLog
	r     *Report
	tr    *TopicReport
	final map[uint32]*shardLog
	sent  map[string]sentRec
}

func (tc *topicCheck) example(kind, format string, args ...any) {
	if len(tc.r.Examples[kind]) >= maxExamples {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if tc.spec.Name != "" {
		msg = "topic " + tc.spec.Name + ": " + msg
	}
	tc.r.Examples[kind] = append(tc.r.Examples[kind], msg)
}

// Check is a pure function of h: per topic it merges the replica logs, compares them with
// what the workload sent, was told and saw, measures each shard's unavailability, and
// returns the Report.
func Check(h History) Report {
	r := Report{
		Seed: h.Seed, Acknowledged: len(h.Acks), Indeterminate: len(h.Failed), Reads: len(h.Reads),
		Faults: map[string]int{}, Examples: map[string][]string{}, UnavailableBoundMs: h.MaxUnavailableMs,
	}
	for _, f := range h.Faults {
		if !f.Continued {
			r.Faults[f.Type]++
		}
	}
	checkHealing(h, &r)
	for _, spec := range topicsOf(h) {
		tc := &topicCheck{h: &h, spec: spec, r: &r, tr: &TopicReport{Name: spec.Name}}
		for _, a := range h.Acks {
			if a.Topic == spec.Name {
				tc.acks = append(tc.acks, a)
			}
		}
		for _, f := range h.Failed {
			if f.Topic == spec.Name {
				tc.fails = append(tc.fails, f)
			}
		}
		for _, rd := range h.Reads {
			if rd.Topic == spec.Name {
				tc.reads = append(tc.reads, rd)
			}
		}
		for _, l := range h.Logs {
			if l.Topic == spec.Name {
				tc.logs = append(tc.logs, l)
			}
		}
		tc.check()
		r.Topics = append(r.Topics, *tc.tr)
		r.MaxUnavailableMs = max(r.MaxUnavailableMs, tc.tr.MaxShardUnavailableMs)
	}
	if len(r.Examples) == 0 {
		r.Examples = nil
	}
	return r
}

// topicsOf returns h's topics and, after them, any topic its records name that it does
// not list.
func topicsOf(h History) []TopicSpec {
	out := slices.Clone(h.Topics)
	known := map[string]bool{}
	for _, t := range out {
		known[t.Name] = true
	}
	extra := map[string]uint32{}
	note := func(topic string, shard uint32) {
		if !known[topic] {
			extra[topic] = max(extra[topic], shard+1)
		}
	}
	for _, a := range h.Acks {
		note(a.Topic, a.Shard)
	}
	for _, f := range h.Failed {
		note(f.Topic, f.Shard)
	}
	for _, rd := range h.Reads {
		note(rd.Topic, rd.Shard)
	}
	for _, l := range h.Logs {
		note(l.Topic, l.Shard)
	}
	for _, name := range sortedKeys(extra) {
		out = append(out, TopicSpec{Name: name, Shards: extra[name]})
	}
	return out
}

func (tc *topicCheck) check() {
	r, tr := tc.r, tc.tr
	tr.Acknowledged = len(tc.acks)
	tc.sent = make(map[string]sentRec, len(tc.acks)+len(tc.fails))
	for _, f := range tc.fails {
		if rec, ok := expectOf(f.Value, f.TsMs); ok {
			tc.sent[f.Value] = sentRec{rec: rec}
		}
	}
	for _, a := range tc.acks {
		if rec, ok := expectOf(a.Value, a.TsMs); ok {
			tc.sent[a.Value] = sentRec{rec: rec, acked: true}
		}
	}
	tc.final = tc.mergeLogs()
	for _, l := range tc.final {
		tr.FinalRecords += len(l.records)
	}
	r.FinalRecords += tr.FinalRecords
	tc.checkAltered()
	tc.checkLost()
	tc.checkEarlyExpiry()
	where := tc.checkDuplicatesAndUnknown()
	for _, f := range tc.fails {
		if len(where[f.Value]) > 0 {
			r.IndeterminateFound++
		}
	}
	tc.checkOrder()
	tc.checkReads()
	tc.checkReadGaps()
	tc.checkAvailability()
}

// shardLog is the merged final log of one shard.
type shardLog struct {
	start   uint64
	records map[uint64]Record
	end     uint64
}

// mergeLogs builds each shard's final log: at every offset the record most replicas hold
// (ties go to the replica whose node name sorts first). Positions where replicas
// disagree in any field are divergent.
func (tc *topicCheck) mergeLogs() map[uint32]*shardLog {
	byShard := map[uint32][]ReplicaLog{}
	for _, l := range tc.logs {
		byShard[l.Shard] = append(byShard[l.Shard], l)
	}
	final := map[uint32]*shardLog{}
	for _, shard := range sortedKeys(byShard) {
		reps := byShard[shard]
		slices.SortFunc(reps, func(a, b ReplicaLog) int { return cmp.Compare(a.Node, b.Node) })
		sl := &shardLog{start: reps[0].Start, records: map[uint64]Record{}}
		for _, l := range reps {
			sl.start = min(sl.start, l.Start)
			sl.end = max(sl.end, l.End())
		}
		for _, l := range reps {
			if l.End() < sl.end {
				tc.r.LaggingReplicas++
			}
		}
		for off := sl.start; off < sl.end; off++ {
			tc.mergeAt(shard, off, reps, sl)
		}
		final[shard] = sl
	}
	return final
}

func (tc *topicCheck) mergeAt(shard uint32, off uint64, reps []ReplicaLog, sl *shardLog) {
	counts := map[string]int{}
	var order []Record
	for _, l := range reps {
		if rec, ok := l.at(off); ok {
			if counts[rec.id()] == 0 {
				order = append(order, rec)
			}
			counts[rec.id()]++
		}
	}
	if len(order) == 0 {
		return
	}
	best := order[0]
	for _, rec := range order[1:] {
		if counts[rec.id()] > counts[best.id()] {
			best = rec
		}
	}
	sl.records[off] = best
	if len(order) > 1 {
		tc.r.Divergent++
		var parts []string
		for _, l := range reps {
			if rec, ok := l.at(off); ok {
				parts = append(parts, l.Node+"="+rec.id())
			}
		}
		tc.example("divergent", "shard %d offset %d: %s", shard, off, strings.Join(parts, " "))
	}
}

// checkAltered compares every record of every replica, whose value a producer sent, with
// what that producer sent: key, headers and timestamp.
func (tc *topicCheck) checkAltered() {
	for _, l := range tc.logs {
		for i, rec := range l.Records {
			s, ok := tc.sent[rec.Value]
			if !ok || s.rec.Equal(rec) {
				continue
			}
			tc.r.Altered++
			tc.example("altered", "shard %d offset %d on %s: %s", l.Shard, l.Start+uint64(i), l.Node, diff(s.rec, rec))
		}
	}
}

// expired reports whether a's record may have been removed by retention: the topic has
// one and the record's timestamp was older than the retention when the logs were read.
func (tc *topicCheck) expired(a Ack) bool {
	return tc.spec.RetentionMs > 0 && a.TsMs < tc.h.ReadDoneUnixMs-tc.spec.RetentionMs
}

func (tc *topicCheck) checkLost() {
	r := tc.r
	for _, a := range tc.acks {
		sl := tc.final[a.Shard]
		if sl == nil {
			r.Lost++
			tc.example("lost", "%s acked at shard %d offset %d: no replica of the shard was read", a.Value, a.Shard, a.Offset)
			continue
		}
		if a.Offset < sl.start {
			if tc.expired(a) {
				r.Expired++
				tc.tr.Expired++
				continue
			}
			r.Lost++
			tc.example("lost", "%s acked at shard %d offset %d: below the log start %d, but its timestamp %d is not older than the retention (%d ms) at the final read (%d)",
				a.Value, a.Shard, a.Offset, sl.start, a.TsMs, tc.spec.RetentionMs, tc.h.ReadDoneUnixMs)
			continue
		}
		got, ok := sl.records[a.Offset]
		if ok && got.Value == a.Value {
			continue
		}
		r.Lost++
		if !ok {
			tc.example("lost", "%s acked at shard %d offset %d: final log has no record there (log %d..%d)",
				a.Value, a.Shard, a.Offset, sl.start, sl.end)
		} else {
			tc.example("lost", "%s acked at shard %d offset %d: final log holds %s there", a.Value, a.Shard, a.Offset, got.Value)
		}
	}
}

// checkEarlyExpiry checks every log start seen during the run: an acknowledged record
// below it must have been older than the retention when it was seen (retention drops a
// batch only when its newest record is). One removed earlier is lost.
func (tc *topicCheck) checkEarlyExpiry() {
	byShard := map[uint32][]LogStart{}
	for _, ls := range tc.h.LogStarts {
		if ls.Topic == tc.spec.Name {
			byShard[ls.Shard] = append(byShard[ls.Shard], ls)
		}
	}
	for _, a := range tc.acks {
		for _, ls := range byShard[a.Shard] {
			if a.Offset >= ls.Start || (tc.spec.RetentionMs > 0 && a.TsMs < ls.AtUnixMs-tc.spec.RetentionMs) {
				continue
			}
			tc.r.Lost++
			tc.example("lost", "%s acked at shard %d offset %d: below the log start %d that %s reported at %d, but its timestamp %d was not older than the retention (%d ms) then",
				a.Value, a.Shard, a.Offset, ls.Start, ls.Node, ls.AtUnixMs, a.TsMs, tc.spec.RetentionMs)
			break
		}
	}
}

// checkDuplicatesAndUnknown finds values stored more than once and values no producer
// sent. It returns where each value is stored.
func (tc *topicCheck) checkDuplicatesAndUnknown() map[string][]pos {
	r := tc.r
	where := map[string][]pos{}
	for _, shard := range sortedKeys(tc.final) {
		sl := tc.final[shard]
		for _, off := range sortedKeys(sl.records) {
			v := sl.records[off].Value
			where[v] = append(where[v], pos{shard, off})
			if _, ok := tc.sent[v]; !ok {
				r.UnknownRecords++
				tc.example("unknown_records", "shard %d offset %d holds %q, which no producer sent", shard, off, v)
			}
		}
	}
	for _, v := range sortedKeys(where) {
		if ps := where[v]; len(ps) > 1 {
			r.Duplicated++
			tc.example("duplicated", "%s stored %d times: %v", v, len(ps), ps)
		}
	}
	return where
}

// checkOrder walks each shard's final log and checks that every producer's sequence
// numbers increase with the offset: among acknowledged records (a safety property), and
// separately among all records.
func (tc *topicCheck) checkOrder() {
	r := tc.r
	for _, shard := range sortedKeys(tc.final) {
		sl := tc.final[shard]
		lastAcked, lastAny := map[int]uint64{}, map[int]uint64{}
		lastAckedOff, lastAnyOff := map[int]uint64{}, map[int]uint64{}
		for _, off := range sortedKeys(sl.records) {
			v := sl.records[off].Value
			p, seq, ok := ParseValue(v)
			if !ok {
				continue
			}
			acked := tc.sent[v].acked
			if prev, seen := lastAcked[p]; acked && seen && seq <= prev {
				r.OrderViolations++
				tc.example("order_violations", "shard %d: producer %d seq %d at offset %d after seq %d at offset %d (both acknowledged)",
					shard, p, seq, off, prev, lastAckedOff[p])
			} else if prev, seen := lastAny[p]; seen && seq <= prev {
				r.OrderIndeterminate++
				tc.example("order_indeterminate", "shard %d: producer %d seq %d (acknowledged %v) at offset %d after seq %d at offset %d",
					shard, p, seq, acked, off, prev, lastAnyOff[p])
			}
			if acked {
				lastAcked[p], lastAckedOff[p] = seq, off
			}
			lastAny[p], lastAnyOff[p] = seq, off
		}
	}
}

// mergeWindows sorts windows and joins overlapping ones.
func mergeWindows(ws []Window) []Window {
	slices.SortFunc(ws, func(a, b Window) int { return cmp.Compare(a.StartMs, b.StartMs) })
	var out []Window
	for _, w := range ws {
		if n := len(out); n > 0 && w.StartMs <= out[n-1].EndMs {
			out[n-1].EndMs = max(out[n-1].EndMs, w.EndMs)
			continue
		}
		out = append(out, w)
	}
	return out
}

func overlap(a, b Window) int64 {
	return max(0, min(a.EndMs, b.EndMs)-max(a.StartMs, b.StartMs))
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
