package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shardlog/localcluster/localclustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	localclustertest.Cleanup()
	os.Exit(code)
}

// benchBinary builds the shardlog binary once for the tests, or takes the one named by
// SHARDLOG_BENCH_BINARY.
func benchBinary(t *testing.T) string {
	t.Helper()
	return localclustertest.Binary(t, "SHARDLOG_BENCH_BINARY")
}

// TestMainEndToEnd runs Main against a 3-node cluster of real server processes it
// starts: a fixed-rate run with keys, compression and the baselines, JSON output.
func TestMainEndToEnd(t *testing.T) {
	bin := benchBinary(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--shards", "4",
		"--replication-factor", "3", "--record-size", "200", "--keys", "uniform:50", "--compression", "s2",
		"--compressibility", "0.5", "--producers", "2", "--consumers", "2", "--duration", "2s", "--rate", "2000",
		"--baseline", "--json"}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("Main = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var v any
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	checkShape(t, v)
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	p, c := rep.Produce, rep.Consume
	t.Logf("produce %.0f records/s, ack p99 %.2f ms; backlog %.0f records/s; e2e p99 %.2f ms",
		p.RecordsPerSec, p.LatencyMs.P99, c.RecordsPerSec, c.E2ELatencyMs.P99)
	// About 2000 records/s for 2 s; the last ones may miss the deadline.
	if p.Records < 3000 || p.Records > 4000 || p.Bytes < p.Records*200 || p.LatencyMs.Count != int64(p.Records) {
		t.Errorf("produce %+v", p)
	}
	if c.Records != p.Records || !c.Complete || c.TailRecords != p.Records || c.E2ELatencyMs.Count != int64(p.Records) {
		t.Errorf("consume %+v, produced %d", c, p.Records)
	}
	if len(rep.Servers) != 3 {
		t.Fatalf("servers %+v", rep.Servers)
	}
	for _, s := range rep.Servers {
		if s.PID <= 0 || s.CPUSeconds <= 0 || s.PeakRSSBytes <= 0 {
			t.Errorf("server %+v", s)
		}
	}
	b := rep.Baseline
	if b == nil || b.Segment == nil || b.Segment.Records == 0 || b.RF1 == nil || b.RF1.Produce.Records == 0 || b.RF1.Workload.ReplicationFactor != 1 {
		t.Errorf("baseline %+v", b)
	}
	if rep.Errors != 0 {
		t.Errorf("errors %d: %v", rep.Errors, rep.ErrorMessages)
	}
}

// TestMatrixMainTiny runs a one-cell matrix (and its latency run) on a 1-node cluster.
func TestMatrixMainTiny(t *testing.T) {
	bin := benchBinary(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"matrix", "--binary", bin, "--dir", t.TempDir(), "--nodes", "1", "--record-sizes", "100",
		"--shard-counts", "2", "--replication-factors", "1", "--latency-shards", "2", "--duration", "1s", "--out", out}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("matrix = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, f := range []string{"produce-100B-2shards-rf1.json", "matrix.json", "matrix.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	md := stdout.String()
	if !strings.Contains(md, "| produce-100B-2shards-rf1 |") || !strings.Contains(md, "| latency-100B-2shards-rf1-rate") {
		t.Errorf("markdown:\n%s", md)
	}
}
