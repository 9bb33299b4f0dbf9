package crashtest

import (
	"testing"

	"shardlog/chaos"
)

const testSeed = 7

// cleanHistory is two replicas of shard 0 holding p0-0..p0-2 at offsets 0..2, all
// acknowledged, and an indeterminate p0-3 that was not stored.
func cleanHistory() History {
	h := History{Seed: testSeed, Shards: 1}
	var recs []Stored
	for seq := range uint64(3) {
		h.Acks = append(h.Acks, chaos.Ack{Producer: 0, Seq: seq, Shard: 0, Offset: seq, Value: chaos.Value(0, seq)})
		recs = append(recs, Stored{Offset: seq, Value: Value(testSeed, 0, seq)})
	}
	h.Indeterminate = []chaos.Failed{{Producer: 0, Seq: 3, Value: chaos.Value(0, 3), Err: "acknowledged after the power cut"}}
	for _, n := range []string{"n0", "n1"} {
		h.Replicas = append(h.Replicas, Replica{Shard: 0, Node: n, Records: append([]Stored(nil), recs...)})
	}
	return h
}

// TestCrashCheckFindsEachViolation feeds Check hand-made histories, each with one
// violation, and checks that it is reported (and that the clean one is clean).
func TestCrashCheckFindsEachViolation(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(h *History)
		field func(r *Report) int
	}{
		{"clean", func(*History) {}, func(r *Report) int { return r.Violations() }},
		{"lost: an acknowledged record missing on every replica", func(h *History) {
			for i := range h.Replicas {
				h.Replicas[i].Records = h.Replicas[i].Records[:2]
			}
		}, func(r *Report) int { return r.Lost }},
		{"gap: offsets not dense", func(h *History) {
			for i := range h.Replicas {
				h.Replicas[i].Records[2].Offset = 3
			}
		}, func(r *Report) int { return r.Gaps }},
		{"gap: log starts above 0", func(h *History) {
			h.Replicas[0].Records = h.Replicas[0].Records[1:]
		}, func(r *Report) int { return r.Gaps }},
		{"corrupt: value with a wrong pad", func(h *History) {
			h.Replicas[1].Records[1].Value = chaos.Value(0, 1) + "|" + pad(testSeed, 0, 2)
		}, func(r *Report) int { return r.Corrupt }},
		{"corrupt: value cut short", func(h *History) {
			v := h.Replicas[0].Records[0].Value
			h.Replicas[0].Records[0].Value = v[:len(v)-1]
		}, func(r *Report) int { return r.Corrupt }},
		{"unknown: a well-formed value never sent", func(h *History) {
			for i := range h.Replicas {
				h.Replicas[i].Records = append(h.Replicas[i].Records, Stored{Offset: 3, Value: Value(testSeed, 9, 9)})
			}
		}, func(r *Report) int { return r.UnknownRecords }},
		{"duplicated: an indeterminate record stored twice", func(h *History) {
			for i := range h.Replicas {
				h.Replicas[i].Records = append(h.Replicas[i].Records,
					Stored{Offset: 3, Value: Value(testSeed, 0, 3)}, Stored{Offset: 4, Value: Value(testSeed, 0, 3)})
			}
		}, func(r *Report) int { return r.Duplicated }},
		{"divergent: replicas disagree", func(h *History) {
			h.Replicas[0].Records = append(h.Replicas[0].Records, Stored{Offset: 3, Value: Value(testSeed, 0, 3)})
			h.Replicas[1].Records = append(h.Replicas[1].Records, Stored{Offset: 3, Value: Value(testSeed, 0, 4)})
			h.Indeterminate = append(h.Indeterminate, chaos.Failed{Producer: 0, Seq: 4, Value: chaos.Value(0, 4)})
		}, func(r *Report) int { return r.Divergent }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := cleanHistory()
			tt.edit(&h)
			r := Check(h)
			got := tt.field(&r)
			if tt.name == "clean" {
				if got != 0 {
					t.Fatalf("clean history: %s", r.String())
				}
				return
			}
			if got == 0 || r.Violations() == 0 {
				t.Fatalf("violation not reported: %s", r.String())
			}
		})
	}
}
