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
// (Shard, Offset).
type Ack struct {
	Producer int    `json:"producer"`
	Seq      uint64 `json:"seq"`
	Shard    uint32 `json:"shard"`
	Offset   uint64 `json:"offset"`
	Value    string `json:"value"`
	// AtMs is when the acknowledgement arrived, in milliseconds since the run started.
	AtMs int64 `json:"at_ms"`
}

// Failed is one record whose produce reported an error. The record may or may not have
// been written (indeterminate), so it may appear in the final log at most once.
type Failed struct {
	Producer int    `json:"producer"`
	Seq      uint64 `json:"seq"`
	Value    string `json:"value"`
	Err      string `json:"err"`
}

// Read is one record a consumer saw.
type Read struct {
	Consumer int    `json:"consumer"`
	Shard    uint32 `json:"shard"`
	Offset   uint64 `json:"offset"`
	Value    string `json:"value"`
}

// ReplicaLog is the final content of one replica of one shard, read from that node's own
// copy: Values[i] is the record at offset Start+i, up to the replica's end.
type ReplicaLog struct {
	Shard  uint32   `json:"shard"`
	Node   string   `json:"node"`
	Start  uint64   `json:"start"`
	Values []string `json:"values"`
}

// End returns the offset after the replica's last record.
func (l ReplicaLog) End() uint64 { return l.Start + uint64(len(l.Values)) }

// at returns the value at offset off, if the replica holds it.
func (l ReplicaLog) at(off uint64) (string, bool) {
	if off < l.Start || off >= l.End() {
		return "", false
	}
	return l.Values[off-l.Start], true
}

// Window is a time span in milliseconds since the run started.
type Window struct {
	StartMs int64 `json:"start_ms"`
	EndMs   int64 `json:"end_ms"`
}

// FaultEvent is one injected fault: its type (kill, pause, partition, restart-all), the
// nodes it hit and when.
type FaultEvent struct {
	Type  string   `json:"type"`
	Nodes []string `json:"nodes"`
	Window
	// NoMajority marks faults during which no majority of nodes could talk to each
	// other (restart-all); their windows do not count against availability.
	NoMajority bool `json:"no_majority"`
}

// History is everything a run recorded: what the workload was told, what consumers saw,
// the faults, and the final logs of every replica.
type History struct {
	Seed uint64 `json:"seed"`
	// Shards is the topic's shard count; shards without any ReplicaLog make every
	// acknowledgement on them lost.
	Shards uint32 `json:"shards"`
	// Workload is the span producers ran in (ms since start).
	Workload Window       `json:"workload"`
	Acks     []Ack        `json:"acks"`
	Failed   []Failed     `json:"failed"`
	Reads    []Read       `json:"reads"`
	Faults   []FaultEvent `json:"faults"`
	Logs     []ReplicaLog `json:"logs"`
}

// Report is the checker's verdict. Lost, Duplicated, Divergent, PhantomReads,
// OrderViolations and UnknownRecords are safety violations; the rest is information.
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
	// Lost: acknowledged records missing from the final log or not at their offset.
	Lost int `json:"lost"`
	// Duplicated: values stored at more than one (shard, offset).
	Duplicated int `json:"duplicated"`
	// Divergent: (shard, offset) positions at which two replicas hold different records.
	Divergent int `json:"divergent"`
	// PhantomReads: reads of a record at an offset that the final log holds differently.
	PhantomReads int `json:"phantom_reads"`
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
	// MaxUnavailableMs is the longest time during the workload in which no produce was
	// acknowledged, not counting time in which no majority was up (restart-all).
	MaxUnavailableMs int64 `json:"max_unavailable_ms"`
	// MaxShardUnavailableMs is the same per shard (the worst shard), counting only
	// shards that acknowledged at least one record: a leader cut off shows here.
	MaxShardUnavailableMs int64 `json:"max_shard_unavailable_ms"`
	// Examples holds the first few examples of each violation, by its JSON name.
	Examples map[string][]string `json:"examples,omitempty"`
	// Errors are harness problems (a replica that could not be read, a failed step):
	// they make the run inconclusive rather than failed.
	Errors []string `json:"errors,omitempty"`
}

// Violations returns the number of safety violations in r.
func (r *Report) Violations() int {
	return r.Lost + r.Duplicated + r.Divergent + r.PhantomReads + r.OrderViolations + r.UnknownRecords
}

// Safe reports whether r found no safety violation.
func (r *Report) Safe() bool { return r.Violations() == 0 }

func (r *Report) example(kind, format string, args ...any) {
	if len(r.Examples[kind]) < maxExamples {
		r.Examples[kind] = append(r.Examples[kind], fmt.Sprintf(format, args...))
	}
}

// pos is a place in the log.
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

// Check is a pure function of h: it merges the replica logs, compares them with what the
// workload was told and saw, and returns the Report.
func Check(h History) Report {
	r := Report{
		Seed: h.Seed, Acknowledged: len(h.Acks), Indeterminate: len(h.Failed), Reads: len(h.Reads),
		Faults: map[string]int{}, Examples: map[string][]string{},
	}
	for _, f := range h.Faults {
		r.Faults[f.Type]++
	}
	final := mergeLogs(h.Logs, &r)
	for _, l := range final {
		r.FinalRecords += len(l.values)
	}
	checkLost(h, final, &r)
	where := checkDuplicatesAndUnknown(h, final, &r)
	for _, f := range h.Failed {
		if len(where[f.Value]) > 0 {
			r.IndeterminateFound++
		}
	}
	acked := make(map[string]bool, len(h.Acks))
	for _, a := range h.Acks {
		acked[a.Value] = true
	}
	checkOrder(final, acked, &r)
	checkReads(h, final, &r)
	r.MaxUnavailableMs = maxUnavailable(h.Workload, h.Acks, h.Faults)
	byShard := map[uint32][]Ack{}
	for _, a := range h.Acks {
		byShard[a.Shard] = append(byShard[a.Shard], a)
	}
	for _, acks := range byShard {
		r.MaxShardUnavailableMs = max(r.MaxShardUnavailableMs, maxUnavailable(h.Workload, acks, h.Faults))
	}
	if len(r.Examples) == 0 {
		r.Examples = nil
	}
	return r
}

// shardLog is the merged final log of one shard.
type shardLog struct {
	start  uint64
	values map[uint64]string
	end    uint64
}

// mergeLogs builds each shard's final log: at every offset the value most replicas hold
// (ties go to the replica whose node name sorts first). Positions where replicas
// disagree are divergent.
func mergeLogs(logs []ReplicaLog, r *Report) map[uint32]*shardLog {
	byShard := map[uint32][]ReplicaLog{}
	for _, l := range logs {
		byShard[l.Shard] = append(byShard[l.Shard], l)
	}
	final := map[uint32]*shardLog{}
	for _, shard := range sortedKeys(byShard) {
		reps := byShard[shard]
		slices.SortFunc(reps, func(a, b ReplicaLog) int { return cmp.Compare(a.Node, b.Node) })
		sl := &shardLog{start: reps[0].Start, values: map[uint64]string{}}
		for _, l := range reps {
			sl.start = min(sl.start, l.Start)
			sl.end = max(sl.end, l.End())
		}
		for _, l := range reps {
			if l.End() < sl.end {
				r.LaggingReplicas++
			}
		}
		for off := sl.start; off < sl.end; off++ {
			counts := map[string]int{}
			var order []string
			for _, l := range reps {
				if v, ok := l.at(off); ok {
					if counts[v] == 0 {
						order = append(order, v)
					}
					counts[v]++
				}
			}
			if len(order) == 0 {
				continue
			}
			best := order[0]
			for _, v := range order[1:] {
				if counts[v] > counts[best] {
					best = v
				}
			}
			sl.values[off] = best
			if len(order) > 1 {
				r.Divergent++
				var parts []string
				for _, l := range reps {
					if v, ok := l.at(off); ok {
						parts = append(parts, l.Node+"="+v)
					}
				}
				r.example("divergent", "shard %d offset %d: %s", shard, off, strings.Join(parts, " "))
			}
		}
		final[shard] = sl
	}
	return final
}

func checkLost(h History, final map[uint32]*shardLog, r *Report) {
	for _, a := range h.Acks {
		sl := final[a.Shard]
		if sl == nil {
			r.Lost++
			r.example("lost", "%s acked at shard %d offset %d: no replica of the shard was read", a.Value, a.Shard, a.Offset)
			continue
		}
		got, ok := sl.values[a.Offset]
		if ok && got == a.Value {
			continue
		}
		r.Lost++
		if !ok {
			r.example("lost", "%s acked at shard %d offset %d: final log has no record there (log %d..%d)",
				a.Value, a.Shard, a.Offset, sl.start, sl.end)
		} else {
			r.example("lost", "%s acked at shard %d offset %d: final log holds %s there", a.Value, a.Shard, a.Offset, got)
		}
	}
}

// checkDuplicatesAndUnknown finds values stored more than once and values no producer
// sent. It returns where each value is stored.
func checkDuplicatesAndUnknown(h History, final map[uint32]*shardLog, r *Report) map[string][]pos {
	sent := make(map[string]bool, len(h.Acks)+len(h.Failed))
	for _, a := range h.Acks {
		sent[a.Value] = true
	}
	for _, f := range h.Failed {
		sent[f.Value] = true
	}
	where := map[string][]pos{}
	for _, shard := range sortedKeys(final) {
		sl := final[shard]
		for _, off := range sortedKeys(sl.values) {
			v := sl.values[off]
			where[v] = append(where[v], pos{shard, off})
			if !sent[v] {
				r.UnknownRecords++
				r.example("unknown_records", "shard %d offset %d holds %q, which no producer sent", shard, off, v)
			}
		}
	}
	for _, v := range sortedKeys(where) {
		if ps := where[v]; len(ps) > 1 {
			r.Duplicated++
			r.example("duplicated", "%s stored %d times: %v", v, len(ps), ps)
		}
	}
	return where
}

// checkOrder walks each shard's final log and checks that every producer's sequence
// numbers increase with the offset: among acknowledged records (a safety property), and
// separately among all records.
func checkOrder(final map[uint32]*shardLog, acked map[string]bool, r *Report) {
	for _, shard := range sortedKeys(final) {
		sl := final[shard]
		lastAcked, lastAny := map[int]uint64{}, map[int]uint64{}
		lastAckedOff, lastAnyOff := map[int]uint64{}, map[int]uint64{}
		for _, off := range sortedKeys(sl.values) {
			v := sl.values[off]
			p, seq, ok := ParseValue(v)
			if !ok {
				continue
			}
			if prev, seen := lastAcked[p]; acked[v] && seen && seq <= prev {
				r.OrderViolations++
				r.example("order_violations", "shard %d: producer %d seq %d at offset %d after seq %d at offset %d (both acknowledged)",
					shard, p, seq, off, prev, lastAckedOff[p])
			} else if prev, seen := lastAny[p]; seen && seq <= prev {
				r.OrderIndeterminate++
				r.example("order_indeterminate", "shard %d: producer %d seq %d (acknowledged %v) at offset %d after seq %d at offset %d",
					shard, p, seq, acked[v], off, prev, lastAnyOff[p])
			}
			if acked[v] {
				lastAcked[p], lastAckedOff[p] = seq, off
			}
			lastAny[p], lastAnyOff[p] = seq, off
		}
	}
}

func checkReads(h History, final map[uint32]*shardLog, r *Report) {
	for _, rd := range h.Reads {
		var got string
		var ok bool
		if sl := final[rd.Shard]; sl != nil {
			got, ok = sl.values[rd.Offset]
		}
		if ok && got == rd.Value {
			continue
		}
		r.PhantomReads++
		if !ok {
			r.example("phantom_reads", "consumer %d read %s at shard %d offset %d: final log has no record there",
				rd.Consumer, rd.Value, rd.Shard, rd.Offset)
		} else {
			r.example("phantom_reads", "consumer %d read %s at shard %d offset %d: final log holds %s",
				rd.Consumer, rd.Value, rd.Shard, rd.Offset, got)
		}
	}
}

// maxUnavailable is the longest gap between acknowledgements (and the workload's start and
// end) during the workload, minus the parts of it in which no majority was up.
func maxUnavailable(workload Window, acks []Ack, faults []FaultEvent) int64 {
	if workload.EndMs <= workload.StartMs {
		return 0
	}
	times := []int64{workload.StartMs}
	for _, a := range acks {
		if a.AtMs > workload.StartMs && a.AtMs < workload.EndMs {
			times = append(times, a.AtMs)
		}
	}
	times = append(times, workload.EndMs)
	slices.Sort(times)
	var excluded []Window
	for _, f := range faults {
		if f.NoMajority && f.EndMs > f.StartMs {
			excluded = append(excluded, f.Window)
		}
	}
	excluded = mergeWindows(excluded)
	var best int64
	for i := 1; i < len(times); i++ {
		gap := Window{times[i-1], times[i]}
		d := gap.EndMs - gap.StartMs
		for _, w := range excluded {
			d -= overlap(gap, w)
		}
		best = max(best, d)
	}
	return best
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
