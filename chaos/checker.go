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

// Ack is one record whose produce was acknowledged: the cluster promised it is stored at
// (Topic, Shard, Offset). Its key, headers and content follow from Producer, Seq and TsMs
// (Expect).
type Ack struct {
	Topic    string `json:"topic,omitempty"`
	Producer int    `json:"producer"`
	Seq      uint64 `json:"seq"`
	Shard    uint32 `json:"shard"`
	Offset   uint64 `json:"offset"`
	Value    string `json:"value"`
	// TsMs is the record timestamp the producer chose (unix ms).
	TsMs int64 `json:"ts_ms"`
	// SentAtMs is when the producer handed the record to the client, AtMs when the
	// acknowledgement arrived, both in milliseconds since the run started.
	SentAtMs int64 `json:"sent_at_ms"`
	AtMs     int64 `json:"at_ms"`
}

// Failed is one record whose produce reported an error. The record may or may not have
// been written (indeterminate), so it may appear in the final log at most once.
type Failed struct {
	Topic    string `json:"topic,omitempty"`
	Producer int    `json:"producer"`
	Seq      uint64 `json:"seq"`
	// Shard is the shard the record was sent to.
	Shard    uint32 `json:"shard"`
	Value    string `json:"value"`
	TsMs     int64  `json:"ts_ms"`
	SentAtMs int64  `json:"sent_at_ms"`
	Err      string `json:"err"`
}

// Read is one record a consumer saw, in the order it saw them.
type Read struct {
	Topic    string `json:"topic,omitempty"`
	Consumer int    `json:"consumer"`
	Shard    uint32 `json:"shard"`
	Offset   uint64 `json:"offset"`
	Record
}

// ReplicaLog is the final content of one replica of one shard, read from that node's own
// copy: Records[i] is the record at offset Start+i, up to the replica's end.
type ReplicaLog struct {
	Topic   string   `json:"topic,omitempty"`
	Shard   uint32   `json:"shard"`
	Node    string   `json:"node"`
	Start   uint64   `json:"start"`
	Records []Record `json:"records"`
}

// End returns the offset after the replica's last record.
func (l ReplicaLog) End() uint64 { return l.Start + uint64(len(l.Records)) }

// at returns the record at offset off, if the replica holds it.
func (l ReplicaLog) at(off uint64) (Record, bool) {
	if off < l.Start || off >= l.End() {
		return Record{}, false
	}
	return l.Records[off-l.Start], true
}

// Window is a time span in milliseconds since the run started.
type Window struct {
	StartMs int64 `json:"start_ms"`
	EndMs   int64 `json:"end_ms"`
}

// FaultEvent is one injected fault: its type (kill, pause, partition, restart-all), the
// nodes it hit and when. Down and Cut say what the cluster looked like during it; the
// availability check derives from them which shards kept a live, connected majority.
type FaultEvent struct {
	Type string `json:"type"`
	// Nodes describes the fault's targets (node names, or the sides of a partition).
	Nodes []string `json:"nodes"`
	Window
	// Down are the nodes killed or paused during the window.
	Down []string `json:"down,omitempty"`
	// Cut are the pairs of nodes that could not talk to each other during the window.
	Cut [][2]string `json:"cut,omitempty"`
	// Detail says how the target was chosen (for the reader).
	Detail string `json:"detail,omitempty"`
}

// LogStart is one replica's first offset as a node reported it during the run.
type LogStart struct {
	Topic string `json:"topic"`
	Shard uint32 `json:"shard"`
	Node  string `json:"node"`
	Start uint64 `json:"start"`
	// AtUnixMs is the wall time (unix ms) after the answer arrived.
	AtUnixMs int64 `json:"at_unix_ms"`
}

// TopicSpec describes one topic of a run.
type TopicSpec struct {
	Name   string `json:"name"`
	Shards uint32 `json:"shards"`
	// RetentionMs is the topic's time retention (0: none): records older than this may
	// be removed below a shard's log start, and are then expired, not lost.
	RetentionMs int64 `json:"retention_ms,omitempty"`
	// Replicas[i] names the nodes holding shard i's replicas. Unknown (nil), every node
	// of the History counts as a replica.
	Replicas [][]string `json:"replicas,omitempty"`
	// Consumers is how many consumers (ids 0..Consumers-1) tailed every shard from the
	// start; each must have read every acknowledged offset, in order.
	Consumers int `json:"consumers"`
}

// History is everything a run recorded: what the workload was told, what consumers saw,
// the faults, and the final logs of every replica.
type History struct {
	Seed uint64 `json:"seed"`
	// Nodes names the cluster's nodes.
	Nodes []string `json:"nodes,omitempty"`
	// Topics are the run's topics. Records of a topic not listed are checked as a topic
	// without retention, consumers or known placement.
	Topics []TopicSpec `json:"topics"`
	// Workload is the span producers ran in (ms since start).
	Workload Window `json:"workload"`
	// MaxUnavailableMs bounds how long a shard with a live, connected majority of its
	// replicas may stay unwritable; 0 does not check availability.
	MaxUnavailableMs int64 `json:"max_unavailable_ms"`
	// ReadDoneUnixMs is the wall time (unix ms) after the final logs were read: a record
	// can have expired only if its timestamp is older than this minus the retention.
	ReadDoneUnixMs int64 `json:"read_done_unix_ms"`
	// LogStarts are log starts seen during the run (topics with retention): what lies
	// below one must have been older than the retention when it was seen.
	LogStarts []LogStart   `json:"log_starts,omitempty"`
	Acks      []Ack        `json:"acks"`
	Failed    []Failed     `json:"failed"`
	Reads     []Read       `json:"reads"`
	Faults    []FaultEvent `json:"faults"`
	Logs      []ReplicaLog `json:"logs"`
}

// TopicReport is the part of a Report about one topic.
type TopicReport struct {
	Name         string `json:"name"`
	Acknowledged int    `json:"acknowledged"`
	FinalRecords int    `json:"final_records"`
	Expired      int    `json:"expired"`
	// MaxShardUnavailableMs is the topic's worst shard (WorstShard): the longest time
	// from a send until the shard next acknowledged anything, minus the time in which
	// the shard had no live, connected majority.
	MaxShardUnavailableMs int64  `json:"max_shard_unavailable_ms"`
	WorstShard            uint32 `json:"worst_shard"`
	// ShardUnavailableMs is the same for every shard, by index.
	ShardUnavailableMs []int64 `json:"shard_unavailable_ms"`
}

// Report is the checker's verdict. Lost, Duplicated, Divergent, PhantomReads,
// OrderViolations, UnknownRecords and Altered are safety violations, ReadGaps a
// completeness violation, UnavailableShards an availability violation; the rest is
// information.
type Report struct {
	Seed         uint64 `json:"seed"`
	Acknowledged int    `json:"acknowledged"`
	// Indeterminate counts sends that reported an error; IndeterminateFound how many of
	// them are in the final log anyway (allowed: an error does not mean "not written").
	Indeterminate      int `json:"indeterminate"`
	IndeterminateFound int `json:"indeterminate_found"`
	Reads              int `json:"reads"`
	// FinalRecords counts records in the merged final log of all shards.
	FinalRecords int `json:"final_records"`
	// Lost: acknowledged records missing from the final log or not at their offset
	// (below a shard's log start only when too young to have expired, or the topic has
	// no retention).
	Lost int `json:"lost"`
	// Expired: acknowledged records below their shard's final log start, old enough for
	// the topic's retention to have removed them (not a violation).
	Expired int `json:"expired"`
	// Duplicated: values stored at more than one (shard, offset).
	Duplicated int `json:"duplicated"`
	// Divergent: (shard, offset) positions at which two replicas hold different records.
	Divergent int `json:"divergent"`
	// Altered: records (in a replica's final log or as a consumer read them) whose key,
	// headers or timestamp differ from what their producer sent.
	Altered int `json:"altered"`
	// PhantomReads: reads of a value at an offset that the final log holds differently.
	PhantomReads int `json:"phantom_reads"`
	// ReadGaps: (consumer, shard) pairs in which the consumer did not read every
	// offset in order up to the last acknowledged one (skipped, went back or stopped).
	ReadGaps int `json:"read_gaps"`
	// OrderViolations: acknowledged records of one producer in one shard out of sequence
	// order.
	OrderViolations int `json:"order_violations"`
	// OrderIndeterminate: like OrderViolations, but at least one of the two records was
	// reported failed to its producer (it may land anywhere, once): not counted as a
	// safety violation, reported so that it can be looked at.
	OrderIndeterminate int `json:"order_indeterminate"`
	// UnknownRecords: final-log records that no producer ever sent.
	UnknownRecords int `json:"unknown_records"`
	// LaggingReplicas: replicas that end before the longest replica of their shard
	// (not a safety violation: they had not caught up when read).
	LaggingReplicas int `json:"lagging_replicas"`
	// Faults counts injected faults per type.
	Faults map[string]int `json:"faults"`
	// MaxUnavailableMs is the worst shard of all topics (see TopicReport).
	MaxUnavailableMs int64 `json:"max_unavailable_ms"`
	// UnavailableBoundMs is the bound the availability check applied (0: none).
	UnavailableBoundMs int64 `json:"unavailable_bound_ms"`
	// UnavailableShards counts shards that stayed unwritable longer than the bound
	// while they had a live, connected majority.
	UnavailableShards int `json:"unavailable_shards"`
	// Topics reports per topic.
	Topics []TopicReport `json:"topics"`
	// Examples holds the first few examples of each violation, by its JSON name.
	Examples map[string][]string `json:"examples,omitempty"`
	// Errors are harness problems (a replica that could not be read, a failed step):
	// they make the run inconclusive rather than failed.
	Errors []string `json:"errors,omitempty"`
}

// Violations returns the number of violations in r: safety, read completeness and
// availability.
func (r *Report) Violations() int {
	return r.Lost + r.Duplicated + r.Divergent + r.Altered + r.PhantomReads + r.OrderViolations +
		r.UnknownRecords + r.ReadGaps + r.UnavailableShards
}

// Safe reports whether r found no violation.
func (r *Report) Safe() bool { return r.Violations() == 0 }

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
		r.Faults[f.Type]++
	}
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
