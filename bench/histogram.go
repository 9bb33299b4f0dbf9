package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: values are recorded in microseconds from 1 µs to 10 minutes with
// three significant digits; larger values are clamped to the maximum.
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
)

// Histogram is a latency histogram (HdrHistogram, microsecond resolution) that is safe
// for concurrent use.
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(histLowest, histHighest, histDigits)}
}

// Record adds one latency. Negative values count as zero; values above 10 minutes are
// clamped to 10 minutes.
func (h *Histogram) Record(d time.Duration) {
	us := clampMicros(d)
	h.mu.Lock()
	_ = h.h.RecordValue(us) // cannot fail: us is within the histogram's range
	h.mu.Unlock()
}

// clampMicros converts d to whole microseconds within the histogram's range.
func clampMicros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	switch {
	case us < 0:
		return 0
	case us > histHighest:
		return histHighest
	}
	return us
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if h == o {
		return
	}
	o.mu.Lock()
	snap := hdrhistogram.Import(o.h.Export())
	o.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(snap)
	h.mu.Unlock()
}

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Summary returns the histogram's percentiles in milliseconds.
func (h *Histogram) Summary() Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.h.TotalCount(),
		Mean:  h.h.Mean() / 1000,
		P50:   ms(h.h.ValueAtQuantile(50)),
		P99:   ms(h.h.ValueAtQuantile(99)),
		P999:  ms(h.h.ValueAtQuantile(99.9)),
		Max:   ms(h.h.Max()),
	}
}

// Latency summarises a latency distribution in milliseconds.
type Latency struct {
	// Count is the number of values.
	Count int64 `json:"count"`
	// Mean is the arithmetic mean.
	Mean float64 `json:"mean"`
	// P50, P99 and P999 are the 50th, 99th and 99.9th percentiles.
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	// Max is the largest value (to the histogram's precision).
	Max float64 `json:"max"`
}

// RecordAll adds every latency of ds (as Record does) under one lock.
func (h *Histogram) RecordAll(ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	h.mu.Lock()
	for _, d := range ds {
		_ = h.h.RecordValue(clampMicros(d))
	}
	h.mu.Unlock()
}
