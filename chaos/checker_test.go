package chaos

import (
	"encoding/json"
	"strings"
	"testing"
)

// clean returns a history of two shards, three replicas each, in which producer 0 wrote
// p0-0..p0-3 and producer 1 wrote p1-0..p1-1, all acknowledged and all read.
func clean() History {
	h := History{Seed: 7, Shards: 2, Workload: Window{0, 1000}}
	shard0 := []string{"p0-0", "p1-0", "p0-2"}
	shard1 := []string{"p0-1", "p1-1", "p0-3"}
	for si, vals := range [][]string{shard0, shard1} {
		for off, v := range vals {
			p, seq, _ := ParseValue(v)
			h.Acks = append(h.Acks, Ack{Producer: p, Seq: seq, Shard: uint32(si), Offset: uint64(off), Value: v, AtMs: int64(100 * (off + 1))})
			h.Reads = append(h.Reads, Read{Consumer: 0, Shard: uint32(si), Offset: uint64(off), Value: v})
		}
		for _, n := range []string{"n1", "n2", "n3"} {
			h.Logs = append(h.Logs, ReplicaLog{Shard: uint32(si), Node: n, Values: append([]string(nil), vals...)})
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

func TestCheckerFindsEachViolation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h *History)
		want   map[string]int // JSON field -> count; unnamed violation fields must be 0
	}{
		{"clean history", func(*History) {}, nil},
		{"acked record missing from every replica", func(h *History) {
			for _, n := range []string{"n1", "n2", "n3"} {
				l := logOf(h, 0, n)
				l.Values = l.Values[:2] // p0-2 at offset 2 is gone
			}
		}, map[string]int{"lost": 1, "phantom_reads": 1}},
		{"acked record at another offset", func(h *History) {
			h.Acks[0].Offset = 1 // p0-0 claimed at 1, stored at 0
		}, map[string]int{"lost": 1}},
		{"no replica of a shard read", func(h *History) {
			var keep []ReplicaLog
			for _, l := range h.Logs {
				if l.Shard != 1 {
					keep = append(keep, l)
				}
			}
			h.Logs = keep
			h.Reads = h.Reads[:3]
		}, map[string]int{"lost": 3}},
		{"record stored twice", func(h *History) {
			for _, n := range []string{"n1", "n2", "n3"} {
				l := logOf(h, 1, n)
				l.Values = append(l.Values, "p1-0")
			}
		}, map[string]int{"duplicated": 1, "order_violations": 1}},
		{"replicas differ at one offset", func(h *History) {
			logOf(h, 0, "n3").Values[1] = "p1-9"
			h.Failed = append(h.Failed, Failed{Producer: 1, Seq: 9, Value: "p1-9", Err: "timeout"})
		}, map[string]int{"divergent": 1}},
		{"minority replica overwritten and majority lost the acked value", func(h *History) {
			logOf(h, 0, "n1").Values[2] = "p9-9"
			logOf(h, 0, "n2").Values[2] = "p9-9"
		}, map[string]int{"divergent": 1, "lost": 1, "phantom_reads": 1, "unknown_records": 1}},
		{"consumer read a record the log does not hold", func(h *History) {
			h.Reads = append(h.Reads, Read{Consumer: 1, Shard: 0, Offset: 3, Value: "p0-4"})
		}, map[string]int{"phantom_reads": 1}},
		{"consumer read another value at an offset", func(h *History) {
			h.Reads[0].Value = "p1-0"
		}, map[string]int{"phantom_reads": 1}},
		{"producer records out of order in a shard", func(h *History) {
			for _, n := range []string{"n1", "n2", "n3"} {
				l := logOf(h, 0, n)
				l.Values[0], l.Values[2] = l.Values[2], l.Values[0]
			}
			h.Acks[0].Offset, h.Acks[2].Offset = 2, 0
			h.Reads[0].Value, h.Reads[2].Value = "p0-2", "p0-0"
		}, map[string]int{"order_violations": 1}},
		{"indeterminate record written is allowed", func(h *History) {
			h.Failed = append(h.Failed, Failed{Producer: 1, Seq: 2, Value: "p1-2", Err: "deadline"})
			for _, n := range []string{"n1", "n2", "n3"} {
				l := logOf(h, 1, n)
				l.Values = append(l.Values, "p1-2")
			}
		}, map[string]int{"indeterminate_found": 1}},
		{"lagging replica is not a violation", func(h *History) {
			l := logOf(h, 1, "n2")
			l.Values = l.Values[:1]
		}, map[string]int{"lagging_replicas": 1}},
		{"failed record applied after later ones is only reported", func(h *History) {
			// p2-7 failed for its producer and landed in shard 0 before p2-6, which was
			// acknowledged after p2-5: acknowledged order holds.
			h.Acks = append(h.Acks, Ack{Producer: 2, Seq: 5, Shard: 0, Offset: 3, Value: "p2-5"},
				Ack{Producer: 2, Seq: 6, Shard: 0, Offset: 5, Value: "p2-6"})
			h.Failed = append(h.Failed, Failed{Producer: 2, Seq: 7, Value: "p2-7", Err: "delivery timeout"})
			for _, n := range []string{"n1", "n2", "n3"} {
				l := logOf(h, 0, n)
				l.Values = append(l.Values, "p2-5", "p2-7", "p2-6")
			}
		}, map[string]int{"indeterminate_found": 1, "order_indeterminate": 1}},
		{"record nobody sent", func(h *History) {
			for _, n := range []string{"n1", "n2", "n3"} {
				l := logOf(h, 1, n)
				l.Values = append(l.Values, "garbage")
			}
		}, map[string]int{"unknown_records": 1}},
	}
	fields := []string{"lost", "duplicated", "divergent", "phantom_reads", "order_violations", "unknown_records",
		"indeterminate_found", "lagging_replicas", "order_indeterminate"}
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
			for _, f := range fields[:6] {
				if tt.want[f] > 0 {
					wantSafe = false
				}
			}
			if r.Safe() != wantSafe {
				t.Errorf("Safe() = %v, want %v", r.Safe(), wantSafe)
			}
			for _, f := range fields[:6] {
				if tt.want[f] > 0 && len(r.Examples[f]) == 0 {
					t.Errorf("no example for %s", f)
				}
			}
		})
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

func TestCheckerCountsFaultsAndAvailability(t *testing.T) {
	tests := []struct {
		name   string
		acks   []int64
		faults []FaultEvent
		want   int64
	}{
		{"no acks at all", nil, nil, 1000},
		{"steady acks", []int64{100, 200, 300, 400, 500, 600, 700, 800, 900}, nil, 100},
		{"gap during a kill", []int64{100, 200, 700, 800, 900}, []FaultEvent{{Type: "kill", Window: Window{200, 300}}}, 500},
		{"gap during restart-all is excluded", []int64{100, 200, 700, 800, 900},
			[]FaultEvent{{Type: "restart-all", Window: Window{250, 650}, NoMajority: true}}, 100},
		{"excluded window partly inside the gap", []int64{100, 200, 700, 800, 900},
			[]FaultEvent{{Type: "restart-all", Window: Window{150, 400}, NoMajority: true}}, 300},
		{"overlapping excluded windows count once", []int64{100, 900},
			[]FaultEvent{{Type: "restart-all", Window: Window{200, 500}, NoMajority: true},
				{Type: "restart-all", Window: Window{400, 600}, NoMajority: true}}, 400},
		{"acks outside the workload ignored", []int64{-5, 500, 2000}, nil, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := History{Workload: Window{0, 1000}, Faults: tt.faults}
			for i, at := range tt.acks {
				h.Acks = append(h.Acks, Ack{Value: Value(0, uint64(i)), AtMs: at, Offset: uint64(i)})
				h.Logs = nil
			}
			r := Check(h)
			if r.MaxUnavailableMs != tt.want || (len(tt.acks) > 0 && r.MaxShardUnavailableMs != tt.want) {
				t.Errorf("max_unavailable_ms = %d, want %d", r.MaxUnavailableMs, tt.want)
			}
			if len(tt.faults) > 0 && r.Faults[tt.faults[0].Type] == 0 {
				t.Errorf("faults %v not counted", r.Faults)
			}
		})
	}
}

func TestCheckerShardUnavailability(t *testing.T) {
	h := History{Workload: Window{0, 1000}}
	for i := range int64(10) {
		h.Acks = append(h.Acks, Ack{Shard: 0, AtMs: 100*i + 50, Value: Value(0, uint64(i)), Offset: uint64(i)})
	}
	h.Acks = append(h.Acks, Ack{Shard: 1, AtMs: 100, Value: Value(1, 0)}, Ack{Shard: 1, AtMs: 800, Value: Value(1, 1), Offset: 1})
	r := Check(h)
	if r.MaxUnavailableMs != 100 || r.MaxShardUnavailableMs != 700 {
		t.Fatalf("max_unavailable_ms %d (want 100), max_shard_unavailable_ms %d (want 700)", r.MaxUnavailableMs, r.MaxShardUnavailableMs)
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

// FuzzCheckerCleanHistoryIsSafe builds a consistent history from fuzz input (values routed
// to shards, every replica identical) and checks that the checker finds nothing.
func FuzzCheckerCleanHistoryIsSafe(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, uint8(3))
	f.Add([]byte{9, 9, 9}, uint8(1))
	f.Fuzz(func(t *testing.T, routes []byte, replicas uint8) {
		if len(routes) > 500 {
			return
		}
		nrep := int(replicas%5) + 1
		h := History{Shards: 4, Workload: Window{0, int64(len(routes)) + 1}}
		logs := make([][]string, 4)
		for i, b := range routes {
			shard := uint32(b % 4)
			v := Value(int(b%3), uint64(i))
			h.Acks = append(h.Acks, Ack{Producer: int(b % 3), Seq: uint64(i), Shard: shard,
				Offset: uint64(len(logs[shard])), Value: v, AtMs: int64(i)})
			logs[shard] = append(logs[shard], v)
		}
		for s, vals := range logs {
			for n := range nrep {
				h.Logs = append(h.Logs, ReplicaLog{Shard: uint32(s), Node: strings.Repeat("n", n+1), Values: vals})
			}
		}
		r := Check(h)
		if !r.Safe() || r.Acknowledged != len(routes) || r.FinalRecords != len(routes) {
			t.Fatalf("clean history judged unsafe: %+v", r)
		}
	})
}
