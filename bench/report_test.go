package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lookup follows a dotted path through decoded JSON; "[]" takes the first element of an array.
func lookup(v any, path string) (any, bool) {
	for p := range strings.SplitSeq(path, ".") {
		name, arr := strings.CutSuffix(p, "[]")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
		if arr {
			a, ok := v.([]any)
			if !ok || len(a) == 0 {
				return nil, false
			}
			v = a[0]
		}
	}
	return v, true
}

func sampleReport() *Report {
	return &Report{
		Started: time.Unix(0, 0), Machine: describeMachine(),
		Workload: WorkloadInfo{Topic: "t", Shards: 8, ReplicationFactor: 3, RecordSize: 100, Keys: "none", Compression: "none"},
		Produce: ProduceResult{Records: 1000, Bytes: 100000, Seconds: 1, RecordsPerSec: 1000, MBPerSec: 0.1,
			LatencyMs: Latency{Count: 1000, P50: 1, P99: 2, P999: 3, Max: 4}},
		Consume: ConsumeResult{Records: 1000, Bytes: 100000, Seconds: 0.5, RecordsPerSec: 2000, MBPerSec: 0.2, Complete: true},
		Servers: []ServerResult{{Name: "n1", PID: 1, CPUSeconds: 2, ProduceCPUSeconds: 1, PeakRSSBytes: 1 << 20}},
		Errors:  1, ErrorMessages: []string{"boom"},
		Baseline: &Baseline{Segment: &Throughput{RecordsPerSec: 5}, RF1: &Report{}},
	}
}

func TestReportJSONShape(t *testing.T) {
	b, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	checkShape(t, v)
	if got, _ := lookup(v, "produce.latency_ms.p999"); got != 3.0 {
		t.Errorf("produce.latency_ms.p999 = %v, want 3", got)
	}
}

// checkShape requires the JSON fields the issue names.
func checkShape(t *testing.T, v any) {
	t.Helper()
	for _, path := range []string{
		"produce.records_per_sec", "produce.mb_per_sec",
		"produce.latency_ms.p50", "produce.latency_ms.p99", "produce.latency_ms.p999", "produce.latency_ms.max",
		"consume.records_per_sec", "consume.mb_per_sec", "consume.e2e_latency_ms.p99",
		"servers[].cpu_seconds", "servers[].peak_rss_bytes", "errors", "retries",
	} {
		got, ok := lookup(v, path)
		if !ok {
			t.Errorf("JSON has no %s", path)
			continue
		}
		if _, ok := got.(float64); !ok {
			t.Errorf("%s = %v (%T), want a number", path, got, got)
		}
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	WriteText(&buf, sampleReport())
	for _, want := range []string{"produce", "records/s", "p99.9", "consume", "e2e", "n1", "boom", "segment store alone", "replication factor 1", "server CPU seconds per GB"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestReportCost(t *testing.T) {
	r := sampleReport()
	// 1 CPU second for 100000 bytes = 10000 s per GB.
	if got := r.ProduceCPUSecondsPerGB(); !near(got, 10000, 1e-9) {
		t.Errorf("ProduceCPUSecondsPerGB = %v", got)
	}
	if got := r.MaxPeakRSS(); got != 1<<20 {
		t.Errorf("MaxPeakRSS = %v", got)
	}
	if got := r.ServerCPUSeconds(); got != 2 {
		t.Errorf("ServerCPUSeconds = %v", got)
	}
	if got := (&Report{}).ProduceCPUSecondsPerGB(); got != 0 {
		t.Errorf("empty ProduceCPUSecondsPerGB = %v", got)
	}
}

func TestMarkdownAndMedian(t *testing.T) {
	mk := func(rps float64) *Report { r := sampleReport(); r.Produce.RecordsPerSec = rps; return r }
	runs := []*Report{mk(3), mk(1), mk(2)}
	if m := median(runs); m.Produce.RecordsPerSec != 2 {
		t.Fatalf("median %v, want 2", m.Produce.RecordsPerSec)
	}
	if median(nil) != nil {
		t.Fatal("median of nothing")
	}
	// Fixed-rate runs: the median is by ack p99, not by the (equal) throughput.
	fixed := func(rps, p99 float64) *Report {
		r := mk(rps)
		r.Workload.Rate, r.Produce.LatencyMs.P99 = 1000, p99
		return r
	}
	if m := median([]*Report{fixed(1000, 17), fixed(999, 14), fixed(1001, 16)}); m.Produce.LatencyMs.P99 != 16 {
		t.Fatalf("fixed-rate median p99 %v, want 16", m.Produce.LatencyMs.P99)
	}
	res := &MatrixResult{Machine: describeMachine(), Command: "shardlog bench matrix", Runs: []*MatrixRun{
		{Name: "produce-100B-8shards-rf3", Median: mk(2), cell: matrixCell{size: 100, shards: 8, rf: 3}},
		{Name: "latency-100B-8shards-rf3-rate100", Median: mk(1), cell: matrixCell{size: 100, shards: 8, rf: 3, rate: 100}},
		{Name: "produce-100B-1shards-rf5", Error: "replication factor 5 exceeds the 3 nodes", cell: matrixCell{size: 100, shards: 1, rf: 5}},
	}, Segment: map[string]*Throughput{"100B": {RecordsPerSec: 9}}}
	var buf bytes.Buffer
	WriteMarkdown(&buf, res)
	out := buf.String()
	for _, want := range []string{"| produce-100B-8shards-rf3 | 100 | 8 | 3 | max |", "| 100 |", "failed: replication factor 5", "segment store alone", "Command: `shardlog bench matrix`"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestShardsOf(t *testing.T) {
	tests := []struct {
		i, n, shards int
		want         []uint32
	}{
		{0, 1, 3, []uint32{0, 1, 2}},
		{0, 2, 5, []uint32{0, 2, 4}},
		{1, 2, 5, []uint32{1, 3}},
		{3, 4, 2, nil},
	}
	for _, tt := range tests {
		if got := shardsOf(tt.i, tt.n, tt.shards); !slices.Equal(got, tt.want) {
			t.Errorf("shardsOf(%d, %d, %d) = %v, want %v", tt.i, tt.n, tt.shards, got, tt.want)
		}
	}
}

func TestSegmentBaseline(t *testing.T) {
	w := DefaultWorkload()
	w.Records, w.Shards, w.Compression, w.Compressibility = 5000, 3, "s2", 0.5
	w.BatchSize = 16 << 10
	got, err := SegmentBaseline(t.Context(), w, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got.Records < 5000 || got.Bytes != got.Records*100 || got.RecordsPerSec <= 0 || got.MBPerSec <= 0 {
		t.Fatalf("segment baseline %+v", got)
	}
}

func TestWriteJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	if err := writeJSON(path, sampleReport()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	checkShape(t, v)
}

func TestCodeCounter(t *testing.T) {
	var c codeCounter
	if c.snapshot() != nil {
		t.Fatal("empty counter has a snapshot")
	}
	results := []error{nil, status.Error(codes.Aborted, "x"), status.Error(codes.Aborted, "y"), status.Error(codes.Unavailable, "z")}
	for _, want := range results {
		got := c.intercept(t.Context(), "/m", nil, nil, nil, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			return want
		})
		if got != want {
			t.Fatalf("intercept returned %v, want %v", got, want)
		}
	}
	if got := c.snapshot(); len(got) != 2 || got["Aborted"] != 2 || got["Unavailable"] != 1 {
		t.Fatalf("snapshot %v", got)
	}
}

func TestReplaceBlock(t *testing.T) {
	doc := "# P\n\nintro\n" + DocBegin + "\nold table\n" + DocEnd + "\n\nafter\n"
	got, err := replaceBlock(doc, "| new |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# P\n\nintro\n" + DocBegin + "\n| new |\n" + DocEnd + "\n\nafter\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := replaceBlock("no markers", "x"); err == nil {
		t.Fatal("a document without markers was accepted")
	}
	if _, err := replaceBlock(DocEnd+" "+DocBegin, "x"); err == nil {
		t.Fatal("markers in the wrong order were accepted")
	}
}
