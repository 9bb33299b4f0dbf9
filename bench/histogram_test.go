package bench

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		want   Latency // Count, P50, P99, P999, Max are checked (to 0.1%)
	}{
		{"empty", nil, Latency{}},
		{"one value", []time.Duration{3 * time.Millisecond}, Latency{Count: 1, P50: 3, P99: 3, P999: 3, Max: 3}},
		{"1..1000 ms", seq(1000, time.Millisecond), Latency{Count: 1000, P50: 500, P99: 990, P999: 999, Max: 1000}},
		{"1..10000 µs", seq(10000, time.Microsecond), Latency{Count: 10000, P50: 5, P99: 9.9, P999: 9.99, Max: 10}},
		{"negative is zero", []time.Duration{-time.Second}, Latency{Count: 1}},
		{"clamped above 10 min", []time.Duration{time.Hour}, Latency{Count: 1, P50: 600000, P99: 600000, P999: 600000, Max: 600000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHistogram()
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Summary()
			if got.Count != tt.want.Count || h.Count() != tt.want.Count {
				t.Fatalf("count %d (Count() %d), want %d", got.Count, h.Count(), tt.want.Count)
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"p50", got.P50, tt.want.P50}, {"p99", got.P99, tt.want.P99}, {"p99.9", got.P999, tt.want.P999}, {"max", got.Max, tt.want.Max}} {
				if !near(c.got, c.want, 0.001) {
					t.Errorf("%s = %v ms, want %v ms", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestHistogramMergeAndRecordAll(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	vals := seq(1000, time.Millisecond)
	for _, v := range vals[:500] {
		a.Record(v)
	}
	b.RecordAll(vals[500:])
	a.Merge(b)
	a.Merge(a) // merging into itself is a no-op
	s := a.Summary()
	if s.Count != 1000 || !near(s.P50, 500, 0.001) || !near(s.Max, 1000, 0.001) || !near(s.Mean, 500.5, 0.001) {
		t.Fatalf("merged summary %+v", s)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	h := NewHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 {
		t.Fatalf("count %d, want 8000", h.Count())
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

func near(got, want, rel float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want) <= rel*math.Abs(want)
}
