package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"shardlog/bench"
	"shardlog/localcluster/localclustertest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchEndToEnd runs `shardlog bench` against a 3-node cluster of real server processes it
// starts: a fixed-rate run with keys, compression and the baselines, JSON output.
func TestBenchEndToEnd(t *testing.T) {
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	var stdout, stderr bytes.Buffer
	code := benchMain(t.Context(), []string{"--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--shards", "4",
		"--replication-factor", "3", "--record-size", "200", "--keys", "uniform:50", "--compression", "s2",
		"--compressibility", "0.5", "--producers", "2", "--consumers", "2", "--duration", "2s", "--rate", "2000",
		"--baseline", "--json"}, &stdout, &stderr)
	if code != benchExitOK {
		t.Fatalf("bench = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	// bench's TestReportJSONShape checks the field names; this checks the values.
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
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

// TestBenchMatrixTiny runs a one-cell matrix (and its latency run) on a 1-node cluster.
func TestBenchMatrixTiny(t *testing.T) {
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := benchMain(t.Context(), []string{"matrix", "--binary", bin, "--dir", t.TempDir(), "--nodes", "1", "--record-sizes", "100",
		"--shard-counts", "2", "--replication-factors", "1", "--latency-shards", "2", "--duration", "1s", "--out", out}, &stdout, &stderr)
	if code != benchExitOK {
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

func TestBenchScaleUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--active", "30", "--shards", "20"},
		{"--bogus"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := benchMain(t.Context(), append([]string{"scale"}, args...), &stdout, &stderr); code != benchExitUsage {
			t.Errorf("bench scale %q = %d, want %d; stderr %s", args, code, benchExitUsage, stderr.String())
		}
	}
}

// TestBenchScaleTiny runs the whole scale benchmark on a 1-node cluster it starts: 20
// shards, 2 s idle, two 2 s produce phases, extra server arguments, JSON and text.
func TestBenchScaleTiny(t *testing.T) {
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	var stdout, stderr bytes.Buffer
	code := benchMain(t.Context(), []string{"scale", "--binary", bin, "--dir", t.TempDir(), "--nodes", "1", "--shards", "20",
		"--active", "16", "--compare", "4", "--settle", "1s", "--idle", "2s", "--duration", "2s",
		"--server-args", "--log-level=error", "--json"}, &stdout, &stderr)
	if code != benchExitOK {
		t.Fatalf("scale = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep bench.ScaleReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	if rep.Shards != 20 || rep.ReplicationFactor != 1 || rep.Nodes != 1 || len(rep.ServerArgs) != 1 {
		t.Errorf("report header %+v", rep)
	}
	if rep.CreateSeconds <= 0 || rep.LeadersSeconds < rep.CreateSeconds || rep.LeadersPerNode["n1"] != 20 {
		t.Errorf("create %.3f s, leaders %.3f s, per node %v", rep.CreateSeconds, rep.LeadersSeconds, rep.LeadersPerNode)
	}
	if rep.IdleSeconds < 2 || len(rep.Servers) != 1 {
		t.Fatalf("idle %.2f s, servers %+v", rep.IdleSeconds, rep.Servers)
	}
	if s := rep.Servers[0]; s.PID <= 0 || s.IdleCPUPercent < 0 || s.IdleRSSBytes <= 0 || s.IdlePeakRSSBytes < s.IdleRSSBytes || s.PeakRSSBytes < s.IdlePeakRSSBytes {
		t.Errorf("server %+v", s)
	}
	for _, p := range []bench.ScaleProduce{rep.Active, rep.Compare} {
		if p.Records == 0 || p.Bytes != p.Records*100 || p.Seconds < 2 || p.LatencyMs.Count != int64(p.Records) || p.Errors != 0 {
			t.Errorf("produce %+v", p)
		}
	}
	if rep.Active.Shards != 16 || rep.Compare.Shards != 4 || rep.Ratio <= 0 || rep.Errors != 0 {
		t.Errorf("active %d, compare %d, ratio %.2f, errors %d %v", rep.Active.Shards, rep.Compare.Shards, rep.Ratio, rep.Errors, rep.ErrorMessages)
	}
	t.Logf("create %.2f s, idle CPU %.2f%%, RSS %.1f MiB; 16 shards %.0f records/s, 4 shards %.0f records/s (%.0f%%)",
		rep.LeadersSeconds, rep.Servers[0].IdleCPUPercent, float64(rep.Servers[0].IdleRSSBytes)/(1<<20),
		rep.Active.RecordsPerSec, rep.Compare.RecordsPerSec, 100*rep.Ratio)

	var text bytes.Buffer
	bench.WriteScaleText(&text, &rep)
	for _, want := range []string{"20 shards, RF 1 on 1 nodes, server args --log-level=error", "idle CPU %", "ratio      16 shards reach", "leaders    n1: 20"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestBenchFailoverUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--server", "127.0.0.1:7400"},
		{"--kills", "0"},
		{"--signal", "hup"},
		{"--idle", "--idle-wait", "-1s"},
		{"--bogus"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := benchMain(t.Context(), append([]string{"failover"}, args...), &stdout, &stderr); code != benchExitUsage {
			t.Errorf("bench failover %q = %d, want %d; stderr %s", args, code, benchExitUsage, stderr.String())
		}
		if args[0] == "--server" && !strings.Contains(stderr.String(), "--server is not supported") {
			t.Errorf("--server rejected without a clear message: %s", stderr.String())
		}
	}
}

// TestBenchFailoverEndToEnd runs the failover benchmark on a 3-node cluster it starts:
// 2 shards at RF 3, one kill after 1 s of traffic, JSON and text output.
func TestBenchFailoverEndToEnd(t *testing.T) {
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := benchMain(t.Context(), []string{"failover", "--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--shards", "2",
		"--rate", "400", "--kills", "1", "--settle", "1s", "--timeout", "15s", "--json"}, &stdout, &stderr)
	if code != benchExitOK {
		t.Fatalf("failover = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	// bench's TestFailoverReportJSONShape checks the field names; this checks the values.
	var rep bench.FailoverReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	if len(rep.Kills) != 1 || rep.Shards != 2 || rep.ReplicationFactor != 3 || rep.Nodes != 3 || rep.TargetSeconds != bench.FailoverTargetSeconds ||
		rep.Mode != "busy" || rep.Signal != bench.SignalKill || rep.NotRecovered != 0 {
		t.Fatalf("report %+v", rep)
	}
	k := rep.Kills[0]
	if k.Node == "" || k.NodeID == 0 || len(k.Shards) == 0 || len(k.PerShard) != len(k.Shards) {
		t.Errorf("kill %+v", k)
	}
	if k.OutageMsMax <= 0 || k.OutageMsMedian > k.OutageMsMax || k.OutageMsMax > 15000 || k.LeaderMs <= 0 || k.RecoverSeconds <= 0 {
		t.Errorf("kill timings %+v", k)
	}
	if rep.OutageMsMedian != k.OutageMsMax || rep.OutageMsMax != k.OutageMsMax || rep.Met != (k.OutageMsMax <= 1500) {
		t.Errorf("summary median %v max %v met %v for kill %+v", rep.OutageMsMedian, rep.OutageMsMax, rep.Met, k)
	}
	if rep.Acked < 200 || rep.Errors != 0 {
		t.Errorf("acked %d, errors %d %v", rep.Acked, rep.Errors, rep.ErrorMessages)
	}
	t.Logf("killed %s leading shards %v: outage max %.1f ms, median %.1f ms, gap %.1f ms, leader %.1f ms, recover %.2f s; test took %v",
		k.Node, k.Shards, k.OutageMsMax, k.OutageMsMedian, k.GapMsMax, k.LeaderMs, k.RecoverSeconds, time.Since(start).Round(time.Millisecond))

	var text bytes.Buffer
	bench.WriteFailoverText(&text, &rep)
	for _, want := range []string{"2 shards, RF 3 on 3 nodes", "mode       busy, signal kill", "outage max ms", "worst affected shard per kill", k.Node} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

// runBenchFailover runs `bench failover` with args on a 3-node cluster it starts and
// returns the exit status, the JSON report, stderr and how long the run took.
func runBenchFailover(t *testing.T, args ...string) (int, bench.FailoverReport, string, time.Duration) {
	t.Helper()
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := benchMain(t.Context(), append([]string{"failover", "--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--json"}, args...),
		&stdout, &stderr)
	took := time.Since(start)
	var rep bench.FailoverReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("failover = %d, JSON: %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
	}
	return code, rep, stderr.String(), took
}

// TestBenchFailoverIdle runs the idle mode: 4 shards, 12 s without writes (the servers
// quiesce a shard after 5 s of ticks; a 7 s wait showed no quiesced shard, 10 s did),
// one kill, probes bounded by 6 s. It asserts what the harness must do whatever the
// servers do: finish, report every shard the killed node led with an outage or as not
// recovered, and fail the run when one did not recover.
func TestBenchFailoverIdle(t *testing.T) {
	code, rep, stderr, took := runBenchFailover(t, "--idle", "--idle-wait", "12s", "--shards", "4", "--kills", "1", "--timeout", "6s")
	if took > 50*time.Second {
		t.Errorf("idle failover took %v", took)
	}
	if rep.Mode != "idle" || rep.Signal != bench.SignalKill || rep.IdleWaitSeconds != 12 || rep.ProbeIntervalMs != 100 || rep.ProbeTimeoutMs != 500 || len(rep.Kills) != 1 {
		t.Fatalf("code %d, report %+v\nstderr:\n%s", code, rep, stderr)
	}
	k := rep.Kills[0]
	if k.Node == "" || len(k.Shards) == 0 || len(k.PerShard) != len(k.Shards) {
		t.Fatalf("kill %+v", k)
	}
	var lost []int
	for i, s := range k.PerShard {
		switch {
		case s.Shard != k.Shards[i] || s.Attempts < 1:
			t.Errorf("shard outage %+v for shard %d", s, k.Shards[i])
		case s.Recovered && (s.OutageMs <= 0 || s.OutageMs > 6000+200):
			t.Errorf("shard %d resumed after %.1f ms, outside the 6 s bound", s.Shard, s.OutageMs)
		case !s.Recovered:
			lost = append(lost, s.Shard)
			if s.LastError == "" || s.OutageMs != 0 {
				t.Errorf("shard %d not recovered without its last error, or with an outage: %+v", s.Shard, s)
			}
		}
	}
	if !slices.Equal(lost, k.NotRecovered) || rep.NotRecovered != len(lost) {
		t.Errorf("not recovered %v, kill says %v, report %d", lost, k.NotRecovered, rep.NotRecovered)
	}
	if len(lost) > 0 && (code != benchExitFailed || rep.Met || !strings.Contains(stderr, "took no write within 6s")) {
		t.Errorf("shards %v lost, yet exit %d, met %v; stderr:\n%s", lost, code, rep.Met, stderr)
	}
	// Idle shards fail over like busy ones (the wake loop): before it, shards the
	// killed node led stayed leaderless and this run exited benchExitFailed.
	if len(lost) > 0 || code != benchExitOK {
		t.Errorf("idle shards %v did not fail over; exit %d; stderr:\n%s", lost, code, stderr)
	}
	t.Logf("idle: killed %s leading shards %v: not recovered %v, per shard %+v, leaders %.1f ms %q, recover %.2f s; exit %d; took %v",
		k.Node, k.Shards, k.NotRecovered, k.PerShard, k.LeaderMs, k.LeaderError, k.RecoverSeconds, code, took.Round(time.Millisecond))
}

// TestBenchFailoverStop runs the busy mode with SIGSTOP instead of SIGKILL: the node
// is paused, measured, continued, and the cluster is healthy again.
func TestBenchFailoverStop(t *testing.T) {
	code, rep, stderr, took := runBenchFailover(t, "--signal", "stop", "--shards", "2", "--rate", "400", "--kills", "1", "--settle", "1s",
		"--timeout", "15s", "--request-timeout", "1s")
	if code != benchExitOK || rep.Mode != "busy" || rep.Signal != bench.SignalStop || rep.RequestTimeoutSeconds != 1 || len(rep.Kills) != 1 {
		t.Fatalf("code %d, report %+v\nstderr:\n%s", code, rep, stderr)
	}
	k := rep.Kills[0]
	if len(k.NotRecovered) > 0 || len(k.PerShard) != len(k.Shards) || k.OutageMsMax <= 0 || k.OutageMsMax > 15000 || k.LeaderMs <= 0 || k.RecoverSeconds <= 0 {
		t.Errorf("kill %+v", k)
	}
	if rep.Acked < 200 || rep.Errors != 0 {
		t.Errorf("acked %d, errors %d %v", rep.Acked, rep.Errors, rep.ErrorMessages)
	}
	t.Logf("stop: paused %s leading shards %v: outage max %.1f ms, gap %.1f ms, leader %.1f ms, recover %.2f s; took %v",
		k.Node, k.Shards, k.OutageMsMax, k.GapMsMax, k.LeaderMs, k.RecoverSeconds, took.Round(time.Millisecond))
}

func TestParseInts(t *testing.T) {
	if got, err := parseInts("1, 8,64"); err != nil || !slices.Equal(got, []int{1, 8, 64}) {
		t.Fatalf("parseInts = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1,,2", "0", "x"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) accepted", bad)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		ok    bool
		check func(t *testing.T, c bench.Config)
	}{
		{"defaults", nil, true, func(t *testing.T, c bench.Config) {
			w := c.Workload
			if c.Nodes != 3 || w.Shards != 8 || w.ReplicationFactor != 3 || w.Compressibility != 0 || w.Keys.Kind != bench.KeysNone || w.Rate != 0 || len(c.Servers) != 0 {
				t.Errorf("defaults %+v", c)
			}
		}},
		{"all workload flags", []string{"--nodes", "5", "--shards", "64", "--replication-factor", "2", "--record-size", "1024",
			"--keys", "zipf:100", "--compressibility", "0.5", "--producers", "4", "--batch-size", "65536", "--linger", "2ms",
			"--inflight", "8", "--consumers", "2", "--duration", "3s", "--records", "1000", "--compression", "zstd",
			"--rate", "5000", "--topic", "x", "--keep", "--baseline", "--binary", "/bin/true"}, true, func(t *testing.T, c bench.Config) {
			w := c.Workload
			if c.Nodes != 5 || w.Shards != 64 || w.ReplicationFactor != 2 || w.RecordSize != 1024 || w.Keys != (bench.KeyDist{Kind: bench.KeysZipf, N: 100}) ||
				w.Compressibility != 0.5 || w.Producers != 4 || w.BatchSize != 65536 || w.Linger != 2*time.Millisecond ||
				w.InFlight != 8 || w.Consumers != 2 || w.Duration != 3*time.Second || w.Records != 1000 || w.Compression != "zstd" ||
				w.Rate != 5000 || c.Topic != "x" || !c.Keep || !c.Baseline || c.Binary != "/bin/true" {
				t.Errorf("parsed %+v", c)
			}
		}},
		{"servers", []string{"--server", "a:1, b:2"}, true, func(t *testing.T, c bench.Config) {
			if !slices.Equal(c.Servers, []string{"a:1", "b:2"}) {
				t.Errorf("servers %q", c.Servers)
			}
		}},
		{"rf follows a small cluster", []string{"--nodes", "1"}, true, func(t *testing.T, c bench.Config) {
			if c.Workload.ReplicationFactor != 1 {
				t.Errorf("rf %d", c.Workload.ReplicationFactor)
			}
		}},
		{"bad keys", []string{"--keys", "zipf"}, false, nil},
		{"bad compression", []string{"--compression", "lz4"}, false, nil},
		{"bad compressibility", []string{"--compressibility", "2"}, false, nil},
		{"no producers", []string{"--producers", "0"}, false, nil},
		{"extra args", []string{"x"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, ok := benchFlags(tt.args, io.Discard)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
