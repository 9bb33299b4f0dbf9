package chaos

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// tsOf is the timestamp the hand-made histories give value v's record.
func tsOf(v string) int64 {
	_, seq, _ := ParseValue(v)
	return 1000 + int64(seq)
}

// rec is the record the workload sends with value v (at tsOf(v)), or a record holding
// only v when v is no workload value.
func rec(v string) Record {
	if r, ok := expectOf(v, tsOf(v)); ok {
		return r
	}
	return Record{Value: v}
}

// failed is a failed send of v to shard 1 of topic "t".
func failed(v string) Failed {
	p, seq, _ := ParseValue(v)
	return Failed{Topic: "t", Producer: p, Seq: seq, Shard: 1, Value: v, TsMs: tsOf(v), SentAtMs: 400, Err: "timeout"}
}

// ack is v acknowledged at (shard, off) of topic "t".
func ack(v string, shard uint32, off uint64) Ack {
	p, seq, _ := ParseValue(v)
	return Ack{Topic: "t", Producer: p, Seq: seq, Shard: shard, Offset: off, Value: v, TsMs: tsOf(v),
		SentAtMs: int64(100 * off), AtMs: int64(100*off + 50)}
}

// clean returns a history of topic "t" with two shards, three replicas each, in which
// producer 0 wrote p0-0..p0-3 and producer 1 wrote p1-0..p1-1, all acknowledged and all
// read by consumer 0.
func clean() History {
	h := History{Seed: 7, Nodes: []string{"n1", "n2", "n3"}, Topics: []TopicSpec{{Name: "t", Shards: 2, Consumers: 1}},
		Workload: Window{0, 1000}, MaxUnavailableMs: 10000, ReadDoneUnixMs: 1_000_000}
	shard0 := []string{"p0-0", "p1-0", "p0-2"}
	shard1 := []string{"p0-1", "p1-1", "p0-3"}
	for si, vals := range [][]string{shard0, shard1} {
		var recs []Record
		for off, v := range vals {
			h.Acks = append(h.Acks, ack(v, uint32(si), uint64(off)))
			h.Reads = append(h.Reads, Read{Topic: "t", Consumer: 0, Shard: uint32(si), Offset: uint64(off), Record: rec(v)})
			recs = append(recs, rec(v))
		}
		for _, n := range []string{"n1", "n2", "n3"} {
			h.Logs = append(h.Logs, ReplicaLog{Topic: "t", Shard: uint32(si), Node: n, Records: slices.Clone(recs)})
		}
	}
	return h
}

func logOf(h *History, shard uint32, node string) *ReplicaLog {
	for i := range h.Logs {
		if h.Logs[i].Shard == shard && h.Logs[i].Node == node {
			return &h.Logs[i]
		}
	}
	panic("no such replica log")
}

// eachReplica applies f to every replica log of shard.
func eachReplica(h *History, shard uint32, f func(l *ReplicaLog)) {
	for _, n := range []string{"n1", "n2", "n3"} {
		f(logOf(h, shard, n))
	}
}

// expire makes shard 0's logs start at start (retention removed what lies below) and
// gives the topic a retention of 100 ms.
func expire(h *History, start uint64) {
	h.Topics[0].RetentionMs = 100
	eachReplica(h, 0, func(l *ReplicaLog) {
		l.Records = l.Records[start-l.Start:]
		l.Start = start
	})
}

// dropRead removes consumer 0's read of (shard, off).
func dropRead(h *History, shard uint32, off uint64) {
	h.Reads = slices.DeleteFunc(h.Reads, func(r Read) bool { return r.Shard == shard && r.Offset == off })
}

func TestCheckerFindsEachViolation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h *History)
		want   map[string]int // JSON field -> count; unnamed fields must be 0
	}{
		{"clean history", func(*History) {}, nil},
		{"acked record missing from every replica", func(h *History) {
			eachReplica(h, 0, func(l *ReplicaLog) { l.Records = l.Records[:2] }) // p0-2 at offset 2 is gone
		}, map[string]int{"lost": 1, "phantom_reads": 1}},
		{"acked record at another offset", func(h *History) {
			h.Acks[0].Offset = 1 // p0-0 claimed at 1, stored at 0
		}, map[string]int{"lost": 1}},
		{"no replica of a shard read", func(h *History) {
			h.Logs = slices.DeleteFunc(h.Logs, func(l ReplicaLog) bool { return l.Shard == 1 })
			h.Reads = h.Reads[:3]
		}, map[string]int{"lost": 3, "read_gaps": 1}},
		{"record stored twice", func(h *History) {
			eachReplica(h, 1, func(l *ReplicaLog) { l.Records = append(l.Records, rec("p1-0")) })
		}, map[string]int{"duplicated": 1, "order_violations": 1}},
		{"replicas differ at one offset", func(h *History) {
			logOf(h, 0, "n3").Records[1] = rec("p1-9")
			h.Failed = append(h.Failed, failed("p1-9"))
		}, map[string]int{"divergent": 1}},
		{"minority replica overwritten and majority lost the acked value", func(h *History) {
			logOf(h, 0, "n1").Records[2] = rec("p9-9")
			logOf(h, 0, "n2").Records[2] = rec("p9-9")
		}, map[string]int{"divergent": 1, "lost": 1, "phantom_reads": 1, "unknown_records": 1}},
		{"consumer read a record the log does not hold", func(h *History) {
			h.Reads = append(h.Reads, Read{Topic: "t", Consumer: 0, Shard: 0, Offset: 3, Record: rec("p0-4")})
		}, map[string]int{"phantom_reads": 1}},
		{"consumer read another value at an offset", func(h *History) {
			h.Reads[0].Record = rec("p1-0")
		}, map[string]int{"phantom_reads": 1}},
		{"producer records out of order in a shard", func(h *History) {
			eachReplica(h, 0, func(l *ReplicaLog) { l.Records[0], l.Records[2] = l.Records[2], l.Records[0] })
			h.Acks[0].Offset, h.Acks[2].Offset = 2, 0
			h.Reads[0].Record, h.Reads[2].Record = rec("p0-2"), rec("p0-0")
		}, map[string]int{"order_violations": 1}},
		{"indeterminate record written is allowed", func(h *History) {
			h.Failed = append(h.Failed, failed("p1-2"))
			eachReplica(h, 1, func(l *ReplicaLog) { l.Records = append(l.Records, rec("p1-2")) })
		}, map[string]int{"indeterminate_found": 1}},
		{"lagging replica is not a violation", func(h *History) {
			l := logOf(h, 1, "n2")
			l.Records = l.Records[:1]
		}, map[string]int{"lagging_replicas": 1}},
		{"failed record applied after later ones is only reported", func(h *History) {
			// p2-7 failed for its producer and landed in shard 0 before p2-6, which was
			// acknowledged after p2-5: acknowledged order holds.
			h.Acks = append(h.Acks, ack("p2-5", 0, 3), ack("p2-6", 0, 5))
			h.Failed = append(h.Failed, failed("p2-7"))
			eachReplica(h, 0, func(l *ReplicaLog) { l.Records = append(l.Records, rec("p2-5"), rec("p2-7"), rec("p2-6")) })
			for i, v := range []string{"p2-5", "p2-7", "p2-6"} {
				h.Reads = append(h.Reads, Read{Topic: "t", Shard: 0, Offset: uint64(3 + i), Record: rec(v)})
			}
		}, map[string]int{"indeterminate_found": 1, "order_indeterminate": 1}},
		{"record nobody sent", func(h *History) {
			eachReplica(h, 1, func(l *ReplicaLog) { l.Records = append(l.Records, Record{Value: "garbage"}) })
		}, map[string]int{"unknown_records": 1}},

		// Read completeness.
		{"consumer skipped an offset", func(h *History) { dropRead(h, 0, 1) }, map[string]int{"read_gaps": 1}},
		{"consumer read an offset twice", func(h *History) {
			h.Reads = slices.Insert(h.Reads, 2, h.Reads[1])
		}, map[string]int{"read_gaps": 1}},
		{"consumer stopped before the last acknowledged offset", func(h *History) { dropRead(h, 1, 2) },
			map[string]int{"read_gaps": 1}},
		{"consumer read nothing of a shard", func(h *History) {
			for off := range uint64(3) {
				dropRead(h, 1, off)
			}
		}, map[string]int{"read_gaps": 1}},
		{"a second consumer that read nothing", func(h *History) { h.Topics[0].Consumers = 2 }, map[string]int{"read_gaps": 2}},
		{"consumer stopping before an unacknowledged tail is fine", func(h *History) {
			h.Failed = append(h.Failed, failed("p1-2"))
			eachReplica(h, 1, func(l *ReplicaLog) { l.Records = append(l.Records, rec("p1-2")) })
		}, map[string]int{"indeterminate_found": 1}},

		// Keys, headers and timestamps.
		{"header changed in one replica", func(h *History) {
			logOf(h, 0, "n2").Records[1].Headers = []Header{{HeaderKey, "0-1-00000000"}}
		}, map[string]int{"altered": 1, "divergent": 1}},
		{"header dropped in every replica", func(h *History) {
			eachReplica(h, 1, func(l *ReplicaLog) { l.Records[0].Headers = nil })
		}, map[string]int{"altered": 3}},
		{"key changed in every replica", func(h *History) {
			eachReplica(h, 0, func(l *ReplicaLog) { l.Records[2].Key = "k0-9" })
		}, map[string]int{"altered": 3}},
		{"timestamp changed in every replica", func(h *History) {
			eachReplica(h, 0, func(l *ReplicaLog) { l.Records[0].TsMs++ })
		}, map[string]int{"altered": 3}},
		{"header changed in a read", func(h *History) {
			h.Reads[4].Headers = []Header{{HeaderKey, "x"}}
		}, map[string]int{"altered": 1}},
		{"key changed in a read", func(h *History) { h.Reads[3].Key = "" }, map[string]int{"altered": 1}},
		{"timestamp changed in a read", func(h *History) { h.Reads[0].TsMs = 0 }, map[string]int{"altered": 1}},
		{"acknowledged timestamp differs from the stored one", func(h *History) {
			h.Acks[1].TsMs++ // the producer chose another time than the logs hold
		}, map[string]int{"altered": 4}}, // three replicas and the read

		// Retention: below the log start expired, above it lost.
		{"records below the log start expired", func(h *History) { expire(h, 2) }, map[string]int{"expired": 2}},
		{"consumer jumped over expired offsets", func(h *History) {
			expire(h, 2)
			dropRead(h, 0, 0)
			dropRead(h, 0, 1)
		}, map[string]int{"expired": 2}},
		{"consumer jumped over an offset above the log start", func(h *History) {
			expire(h, 1)
			dropRead(h, 0, 1)
		}, map[string]int{"expired": 1, "read_gaps": 1}},
		{"record above the log start missing", func(h *History) {
			expire(h, 1)
			eachReplica(h, 0, func(l *ReplicaLog) { l.Records = l.Records[:1] }) // offset 2 gone
		}, map[string]int{"expired": 1, "lost": 1, "phantom_reads": 1}},
		{"record below the log start too young to expire", func(h *History) {
			expire(h, 1)
			h.ReadDoneUnixMs = tsOf("p0-0") + 50 // retention 100 ms: p0-0 cannot have expired
		}, map[string]int{"lost": 1}},
		{"record below the log start of a topic without retention", func(h *History) {
			expire(h, 1)
			h.Topics[0].RetentionMs = 0
		}, map[string]int{"lost": 1}},
		{"log start seen during the run above records old enough", func(h *History) {
			h.Topics[0].RetentionMs = 100
			h.LogStarts = []LogStart{{Topic: "t", Shard: 0, Node: "n1", Start: 2, AtUnixMs: tsOf("p0-2") + 101}}
		}, nil},
		{"log start seen during the run above records too young", func(h *History) {
			h.Topics[0].RetentionMs = 100
			h.LogStarts = []LogStart{{Topic: "t", Shard: 0, Node: "n1", Start: 2, AtUnixMs: tsOf("p0-0") + 100}}
		}, map[string]int{"lost": 2}}, // p0-0 and p1-0, both stamped 1000: not older than 100 ms at 1100
		{"log start seen on a topic without retention", func(h *History) {
			h.LogStarts = []LogStart{{Topic: "t", Shard: 1, Node: "n2", Start: 1, AtUnixMs: 1 << 40}}
		}, map[string]int{"lost": 1}},
		{"log start of another topic", func(h *History) {
			h.LogStarts = []LogStart{{Topic: "u", Shard: 1, Node: "n2", Start: 3, AtUnixMs: 1 << 40}}
		}, nil},
		{"read below the log start of another value", func(h *History) {
			expire(h, 2)
			h.Reads[0].Record = rec("p1-1")
		}, map[string]int{"expired": 2, "phantom_reads": 1}},
	}
	fields := []string{"lost", "duplicated", "divergent", "altered", "phantom_reads", "read_gaps", "order_violations",
		"unknown_records", "unavailable_shards", "indeterminate_found", "lagging_replicas", "order_indeterminate", "expired"}
	violations := fields[:9]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := clean()
			tt.mutate(&h)
			r := Check(h)
			got := reportFields(t, r)
			for _, f := range fields {
				if got[f] != float64(tt.want[f]) {
					t.Errorf("%s = %v, want %d (examples %v)", f, got[f], tt.want[f], r.Examples)
				}
			}
			wantSafe := true
			for _, f := range violations {
				if tt.want[f] > 0 {
					wantSafe = false
					if len(r.Examples[f]) == 0 {
						t.Errorf("no example for %s", f)
					}
				}
			}
			if r.Safe() != wantSafe {
				t.Errorf("Safe() = %v, want %v", r.Safe(), wantSafe)
			}
		})
	}
}

// TestCheckerReportsTheFirstGap checks the gap example names topic, shard, the offset
// expected and the one read.
func TestCheckerReportsTheFirstGap(t *testing.T) {
	h := clean()
	dropRead(&h, 0, 1)
	r := Check(h)
	want := "topic t: consumer 0 shard 0: expected offset 1, got 2"
	if len(r.Examples["read_gaps"]) != 1 || r.Examples["read_gaps"][0] != want {
		t.Fatalf("read_gaps examples %q, want [%q]", r.Examples["read_gaps"], want)
	}
}

func reportFields(t *testing.T, r Report) map[string]any {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seed", "acknowledged", "lost", "duplicated", "divergent", "phantom_reads",
		"order_violations", "faults", "max_unavailable_ms"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("report JSON lacks %q: %s", k, b)
		}
	}
	return m
}

// availHistory is one shard of topic "a" on n1,n2,n3 (of n1..n5) with a bound of 1 s:
// every send is acknowledged 10 ms later, or at ackAt(send) when that is not 0.
func availHistory(sends []int64, ackAt func(int64) int64, failedAt []int64, faults []FaultEvent) History {
	h := History{Nodes: []string{"n1", "n2", "n3", "n4", "n5"}, Workload: Window{0, 10000}, MaxUnavailableMs: 1000,
		Topics: []TopicSpec{{Name: "a", Shards: 1, Replicas: [][]string{{"n1", "n2", "n3"}}}}, Faults: faults}
	for i, s := range sends {
		at := s + 10
		if ackAt != nil && ackAt(s) != 0 {
			at = ackAt(s)
		}
		v := Value(0, uint64(i))
		h.Acks = append(h.Acks, Ack{Topic: "a", Seq: uint64(i), Offset: uint64(i), Value: v, TsMs: tsOf(v), SentAtMs: s, AtMs: at})
	}
	var recs []Record
	for _, a := range h.Acks {
		recs = append(recs, rec(a.Value))
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		h.Logs = append(h.Logs, ReplicaLog{Topic: "a", Node: n, Records: recs})
	}
	for i, s := range failedAt {
		v := Value(1, uint64(i))
		h.Failed = append(h.Failed, Failed{Topic: "a", Producer: 1, Seq: uint64(i), Value: v, TsMs: tsOf(v), SentAtMs: s, Err: "timeout"})
	}
	return h
}

func TestCheckerAvailability(t *testing.T) {
	every := func(from, to, step int64) []int64 {
		var out []int64
		for s := from; s < to; s += step {
			out = append(out, s)
		}
		return out
	}
	kill := func(start, end int64, nodes ...string) FaultEvent {
		return FaultEvent{Type: FaultKill, Nodes: nodes, Down: nodes, Window: Window{start, end}}
	}
	cut := func(start, end int64, pairs ...[2]string) FaultEvent {
		return FaultEvent{Type: FaultPartition, Cut: pairs, Window: Window{start, end}}
	}
	steady := every(0, 10000, 100)
	stuck := func(s int64) int64 { // sends from 2 s on wait until 5 s
		if s >= 2000 && s < 5000 {
			return 5000
		}
		return 0
	}
	tests := []struct {
		name       string
		h          History
		worst      int64
		violations int
	}{
		{"steady", availHistory(steady, nil, nil, nil), 10, 0},
		{"idle shard written every 5 s", availHistory(every(0, 10000, 5000), nil, nil, nil), 10, 0},
		{"3 s outage while one replica was killed", availHistory(steady, stuck, nil, []FaultEvent{kill(1900, 4000, "n1")}), 3000, 1},
		{"outage while two replicas were killed", availHistory(steady, stuck, nil, []FaultEvent{kill(1900, 5000, "n1", "n2")}), 10, 0},
		{"outage while nodes without replicas were killed", availHistory(steady, stuck, nil,
			[]FaultEvent{kill(1900, 5000, "n4", "n5")}), 3000, 1},
		{"restart-all excluded", availHistory(steady, stuck, nil,
			[]FaultEvent{{Type: FaultRestartAll, Down: []string{"n1", "n2", "n3", "n4", "n5"}, Window: Window{1500, 4500}}}), 500, 0},
		{"no-majority window covering part of the outage", availHistory(steady, stuck, nil,
			[]FaultEvent{kill(2000, 3000, "n1", "n3")}), 2000, 1},
		{"leader cut off, the other two connected", availHistory(steady, stuck, nil,
			[]FaultEvent{cut(1900, 5000, [2]string{"n1", "n2"}, [2]string{"n1", "n3"})}), 3000, 1},
		{"every replica cut from the others", availHistory(steady, stuck, nil,
			[]FaultEvent{cut(1900, 5000, [2]string{"n1", "n2"}, [2]string{"n1", "n3"}, [2]string{"n2", "n3"})}), 10, 0},
		{"one replica down, the other two cut apart", availHistory(steady, stuck, nil,
			[]FaultEvent{kill(1900, 5000, "n1"), cut(1900, 5000, [2]string{"n2", "n3"})}), 10, 0},
		{"failed send until the next acknowledgement", availHistory(every(0, 10000, 5000), nil, []int64{1000}, nil), 4010, 1},
		{"failed send, nothing acknowledged after it", availHistory([]int64{0}, nil, []int64{8500}, nil), 1500, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.h)
			if r.MaxUnavailableMs != tt.worst || r.Topics[0].MaxShardUnavailableMs != tt.worst || r.UnavailableShards != tt.violations {
				t.Errorf("max_unavailable_ms %d (topic %d), unavailable_shards %d; want %d and %d (examples %v)",
					r.MaxUnavailableMs, r.Topics[0].MaxShardUnavailableMs, r.UnavailableShards, tt.worst, tt.violations, r.Examples)
			}
			if r.Safe() != (tt.violations == 0) || (tt.violations > 0 && len(r.Examples["unavailable_shards"]) == 0) {
				t.Errorf("Safe() = %v with %d violations, examples %v", r.Safe(), tt.violations, r.Examples)
			}
			if r.Lost+r.Divergent+r.Altered != 0 {
				t.Errorf("availability history not otherwise clean: %+v", r)
			}
		})
	}
}

func TestCheckerAvailabilityPerShard(t *testing.T) {
	h := availHistory([]int64{0, 100}, nil, nil, nil)
	h.Topics[0].Shards = 3
	h.Acks = append(h.Acks, Ack{Topic: "a", Seq: 2, Shard: 2, Value: Value(0, 2), TsMs: tsOf("p0-2"), SentAtMs: 200, AtMs: 2700})
	h.Logs = append(h.Logs, ReplicaLog{Topic: "a", Shard: 2, Node: "n1", Records: []Record{rec("p0-2")}})
	r := Check(h)
	if got := r.Topics[0].ShardUnavailableMs; !slices.Equal(got, []int64{10, 0, 2500}) || r.Topics[0].WorstShard != 2 {
		t.Fatalf("shard_unavailable_ms %v, worst shard %d; want [10 0 2500], 2", got, r.Topics[0].WorstShard)
	}
}

func TestCheckerAvailabilityNotCheckedWithoutBound(t *testing.T) {
	h := availHistory([]int64{0}, func(int64) int64 { return 5000 }, nil, nil)
	h.MaxUnavailableMs = 0
	if r := Check(h); r.MaxUnavailableMs != 5000 || r.UnavailableShards != 0 {
		t.Fatalf("max_unavailable_ms %d unavailable_shards %d", r.MaxUnavailableMs, r.UnavailableShards)
	}
}

func TestCheckerHasMajority(t *testing.T) {
	reps := []string{"a", "b", "c"}
	tests := []struct {
		name string
		ev   FaultEvent
		want bool
	}{
		{"nothing", FaultEvent{}, true},
		{"one down", FaultEvent{Down: []string{"a"}}, true},
		{"two down", FaultEvent{Down: []string{"a", "c"}}, false},
		{"other nodes down", FaultEvent{Down: []string{"x", "y", "z"}}, true},
		{"bridge: a-b cut, c sees both", FaultEvent{Cut: [][2]string{{"a", "b"}}}, true},
		{"all pairs cut", FaultEvent{Cut: [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}}}, false},
		{"c down, a-b cut", FaultEvent{Down: []string{"c"}, Cut: [][2]string{{"b", "a"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasMajority(reps, tt.ev); got != tt.want {
				t.Errorf("hasMajority = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckerParseValue(t *testing.T) {
	tests := []struct {
		in   string
		p    int
		seq  uint64
		okay bool
	}{
		{"p0-0", 0, 0, true},
		{"p12-345", 12, 345, true},
		{Value(3, 99), 3, 99, true},
		{"p-1", 0, 0, false},
		{"x1-2", 0, 0, false},
		{"p1", 0, 0, false},
		{"p1-x", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, seq, ok := ParseValue(tt.in)
			if ok != tt.okay || (ok && (p != tt.p || seq != tt.seq)) {
				t.Errorf("ParseValue(%q) = %d, %d, %v", tt.in, p, seq, ok)
			}
		})
	}
}

// FuzzCheckerCleanHistoryIsSafe builds a consistent history from fuzz input (records
// routed to shards, every replica identical, a consumer that read everything in order,
// a log start below which records expired) and checks that the checker finds nothing.
func FuzzCheckerCleanHistoryIsSafe(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, uint8(3), uint8(0))
	f.Add([]byte{9, 9, 9}, uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, routes []byte, replicas, expired uint8) {
		if len(routes) > 500 {
			return
		}
		nrep := int(replicas%5) + 1
		h := History{Topics: []TopicSpec{{Name: "f", Shards: 4, Consumers: 1, RetentionMs: 10}},
			Workload: Window{0, int64(len(routes)) + 1}, MaxUnavailableMs: 1000, ReadDoneUnixMs: 1 << 40}
		logs := make([][]Record, 4)
		for i, b := range routes {
			shard := uint32(b % 4)
			p := int(b % 3)
			r := Expect(p, uint64(i), int64(i))
			h.Acks = append(h.Acks, Ack{Topic: "f", Producer: p, Seq: uint64(i), Shard: shard,
				Offset: uint64(len(logs[shard])), Value: r.Value, TsMs: r.TsMs, SentAtMs: int64(i), AtMs: int64(i) + 1})
			h.Reads = append(h.Reads, Read{Topic: "f", Shard: shard, Offset: uint64(len(logs[shard])), Record: r})
			logs[shard] = append(logs[shard], r)
		}
		wantExpired := 0
		for s, recs := range logs {
			start := min(uint64(expired%4), uint64(len(recs)))
			if s != 0 {
				start = 0
			}
			wantExpired += int(start)
			for n := range nrep {
				h.Logs = append(h.Logs, ReplicaLog{Topic: "f", Shard: uint32(s), Node: strings.Repeat("n", n+1),
					Start: start, Records: recs[start:]})
			}
		}
		r := Check(h)
		if !r.Safe() || r.Acknowledged != len(routes) || r.FinalRecords+r.Expired != len(routes) || r.Expired != wantExpired {
			t.Fatalf("clean history judged unsafe: %+v", r)
		}
	})
}
