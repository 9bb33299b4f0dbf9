package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFailoverShardOutage(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(msec int) time.Time { return base.Add(time.Duration(msec) * time.Millisecond) }
	killAt, goneAt := at(0), at(5)
	tests := []struct {
		name        string
		acks        []time.Time
		outage, gap time.Duration
		ok          bool
	}{
		{"no acks", nil, 0, 0, false},
		{"only before the kill", []time.Time{at(-20), at(-10)}, 0, 0, false},
		{"resumes after a gap", []time.Time{at(-8), at(-4), at(900), at(904)}, 900 * time.Millisecond, 904 * time.Millisecond, true},
		{"ack while dying is ignored", []time.Time{at(-4), at(2), at(700)}, 700 * time.Millisecond, 698 * time.Millisecond, true},
		{"ack exactly when gone counts", []time.Time{at(-4), at(5)}, 5 * time.Millisecond, 9 * time.Millisecond, true},
		{"no ack before: gap from the kill", []time.Time{at(300)}, 300 * time.Millisecond, 300 * time.Millisecond, true},
		{"only a dying ack before", []time.Time{at(3), at(400)}, 400 * time.Millisecond, 397 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outage, gap, ok := shardOutage(tt.acks, killAt, goneAt)
			if outage != tt.outage || gap != tt.gap || ok != tt.ok {
				t.Errorf("shardOutage = %v, %v, %v; want %v, %v, %v", outage, gap, ok, tt.outage, tt.gap, tt.ok)
			}
		})
	}
}

func TestFailoverMedianMax(t *testing.T) {
	tests := []struct {
		name        string
		in          []time.Duration
		median, max time.Duration
	}{
		{"empty", nil, 0, 0},
		{"one", []time.Duration{7}, 7, 7},
		{"odd unsorted", []time.Duration{9, 1, 5}, 5, 9},
		{"even", []time.Duration{4, 1, 10, 2}, 3, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.in...)
			med, mx := medianMax(tt.in)
			if med != tt.median || mx != tt.max {
				t.Errorf("medianMax = %v, %v; want %v, %v", med, mx, tt.median, tt.max)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("medianMax reordered its input: %v", tt.in)
				}
			}
		})
	}
}

func TestFailoverReportSummarize(t *testing.T) {
	tests := []struct {
		name         string
		worst        []float64
		lost         []int // per kill: shards not recovered
		median, max  float64
		notRecovered int
		met          bool
	}{
		{"no kills", nil, nil, 0, 0, 0, false},
		{"all fast", []float64{800, 900, 1000}, nil, 900, 1000, 0, true},
		{"median at the target", []float64{1500, 1400, 2500}, nil, 1500, 2500, 0, true},
		{"median above", []float64{1600, 1400, 2500}, nil, 1600, 2500, 0, false},
		{"a kill with a lost shard is left out and fails the target", []float64{800, 900, 300}, []int{0, 0, 2}, 850, 900, 2, false},
		{"only a lost kill", []float64{700}, []int{1}, 0, 0, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &FailoverReport{TargetSeconds: FailoverTargetSeconds}
			for i, w := range tt.worst {
				k := FailoverKill{OutageMsMax: w}
				if tt.lost != nil {
					for s := range tt.lost[i] {
						k.NotRecovered = append(k.NotRecovered, s)
					}
				}
				r.Kills = append(r.Kills, k)
			}
			r.summarize()
			if r.OutageMsMedian != tt.median || r.OutageMsMax != tt.max || r.Met != tt.met || r.NotRecovered != tt.notRecovered {
				t.Errorf("summary median %v max %v met %v not recovered %d; want %v %v %v %d", r.OutageMsMedian, r.OutageMsMax, r.Met,
					r.NotRecovered, tt.median, tt.max, tt.met, tt.notRecovered)
			}
		})
	}
}

func TestFailoverFillOutages(t *testing.T) {
	tests := []struct {
		name                string
		per                 []ShardOutage
		median, max, gapMax float64
		notRecovered        []int
	}{
		{"none", nil, 0, 0, 0, nil},
		{"all resumed", []ShardOutage{{Shard: 1, Recovered: true, OutageMs: 900, GapMs: 910},
			{Shard: 4, Recovered: true, OutageMs: 700, GapMs: 950}, {Shard: 6, Recovered: true, OutageMs: 1200, GapMs: 1201}},
			900, 1200, 1201, nil},
		{"lost shards are left out of the times", []ShardOutage{{Shard: 0}, {Shard: 3, Recovered: true, OutageMs: 865}, {Shard: 5}},
			865, 865, 0, []int{0, 5}},
		{"all lost", []ShardOutage{{Shard: 2}, {Shard: 7}}, 0, 0, 0, []int{2, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := FailoverKill{NotRecovered: []int{99}}
			k.fillOutages(tt.per)
			if k.OutageMsMedian != tt.median || k.OutageMsMax != tt.max || k.GapMsMax != tt.gapMax ||
				!slices.Equal(k.NotRecovered, tt.notRecovered) || len(k.PerShard) != len(tt.per) {
				t.Errorf("kill %+v; want median %v max %v gap %v not recovered %v", k, tt.median, tt.max, tt.gapMax, tt.notRecovered)
			}
		})
	}
}

func TestFailoverTextNotRecovered(t *testing.T) {
	r := &FailoverReport{Topic: "t", Shards: 8, ReplicationFactor: 3, Nodes: 3, Mode: "idle", Signal: SignalStop,
		TimeoutSeconds: 30, IdleWaitSeconds: 15, ProbeIntervalMs: 100, ProbeTimeoutMs: 500, TargetSeconds: FailoverTargetSeconds}
	k := FailoverKill{Node: "n2", NodeID: 2, Shards: []int{3, 5}, LeaderError: "shards [5] had no new leader within 30s of the kill"}
	k.fillOutages([]ShardOutage{{Shard: 3, Recovered: true, OutageMs: 812.5, Attempts: 2, LastError: "deadline"},
		{Shard: 5, Attempts: 60, LastError: "rpc error: code = DeadlineExceeded"}})
	r.Kills = append(r.Kills, k)
	r.summarize()
	var text bytes.Buffer
	WriteFailoverText(&text, r)
	for _, want := range []string{"mode       idle, signal stop (SIGSTOP", "no writes for 15.0 s before each kill",
		"shard 3: 812.5 ms, 2 attempts", "shard 5: no write acknowledged within 30 s, 60 attempts, last error: rpc error: code = DeadlineExceeded",
		"leaders: shards [5] had no new leader", "NOT RECOVERED  1 shards", "over 0 kills (misses"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestFailoverAckLogTrim(t *testing.T) {
	base := time.Unix(1000, 0)
	a := newAckLog(2)
	for i := range 10 {
		a.add(0, base.Add(time.Duration(i)*time.Second))
	}
	a.add(1, base)
	a.trim(base.Add(5500 * time.Millisecond))
	got := a.snapshot(0)
	if len(got) != 5 || !got[0].Equal(base.Add(5*time.Second)) {
		t.Errorf("shard 0 after trim: %v", got)
	}
	if got := a.snapshot(1); len(got) != 1 {
		t.Errorf("shard 1 lost its last ack: %v", got)
	}
	if !a.since(0, base.Add(9*time.Second)) || a.since(0, base.Add(10*time.Second)) || a.total.Load() != 11 {
		t.Errorf("since/total wrong: total %d", a.total.Load())
	}
}

func TestFailoverConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*FailoverConfig)
		ok     bool
	}{
		{"defaults", func(*FailoverConfig) {}, true},
		{"existing cluster", func(fc *FailoverConfig) { fc.Config.Servers = []string{"127.0.0.1:7400"} }, false},
		{"two nodes", func(fc *FailoverConfig) { fc.Config.Nodes, fc.ReplicationFactor = 2, 2 }, false},
		{"rf above nodes", func(fc *FailoverConfig) { fc.ReplicationFactor = 5 }, false},
		{"rf 5 of 5", func(fc *FailoverConfig) { fc.Config.Nodes, fc.ReplicationFactor = 5, 5 }, true},
		{"no shards", func(fc *FailoverConfig) { fc.Shards = 0 }, false},
		{"zero rate", func(fc *FailoverConfig) { fc.Rate = 0 }, false},
		{"no kills", func(fc *FailoverConfig) { fc.Kills = 0 }, false},
		{"zero settle", func(fc *FailoverConfig) { fc.Settle = 0 }, true},
		{"negative settle", func(fc *FailoverConfig) { fc.Settle = -time.Second }, false},
		{"zero timeout", func(fc *FailoverConfig) { fc.Timeout = 0 }, false},
		{"negative record size", func(fc *FailoverConfig) { fc.RecordSize = -1 }, false},
		{"stop", func(fc *FailoverConfig) { fc.Signal = SignalStop }, true},
		{"unknown signal", func(fc *FailoverConfig) { fc.Signal = "term" }, false},
		{"idle", func(fc *FailoverConfig) { fc.Idle, fc.IdleWait = true, 0 }, true},
		{"negative idle wait", func(fc *FailoverConfig) { fc.Idle, fc.IdleWait = true, -time.Second }, false},
		{"zero probe interval", func(fc *FailoverConfig) { fc.ProbeInterval = 0 }, false},
		{"zero probe timeout", func(fc *FailoverConfig) { fc.ProbeTimeout = 0 }, false},
		{"probe timeout above the timeout", func(fc *FailoverConfig) { fc.ProbeTimeout = fc.Timeout + time.Millisecond }, false},
		{"zero request timeout", func(fc *FailoverConfig) { fc.RequestTimeout = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := DefaultFailoverConfig()
			tt.modify(&fc)
			err := fc.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrUsage) {
				t.Fatalf("Validate = %v, not ErrUsage", err)
			}
		})
	}
}

func TestFailoverMainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--server", "127.0.0.1:7400"},
		{"--kills", "0"},
		{"--signal", "hup"},
		{"--idle", "--idle-wait", "-1s"},
		{"--bogus"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(append([]string{"failover"}, args...), &stdout, &stderr); code != ExitUsage {
			t.Errorf("Main(failover %q) = %d, want %d; stderr %s", args, code, ExitUsage, stderr.String())
		}
		if args[0] == "--server" && !strings.Contains(stderr.String(), "--server is not supported") {
			t.Errorf("--server rejected without a clear message: %s", stderr.String())
		}
	}
}

// TestFailoverMainEndToEnd runs the failover benchmark on a 3-node cluster it starts:
// 2 shards at RF 3, one kill after 1 s of traffic, JSON and text output.
func TestFailoverMainEndToEnd(t *testing.T) {
	bin := benchBinary(t)
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"failover", "--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--shards", "2",
		"--rate", "400", "--kills", "1", "--settle", "1s", "--timeout", "15s", "--json"}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("failover = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var v any
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	for _, path := range []string{"kills[].outage_ms_max", "kills[].per_shard[].outage_ms", "kills[].outage_ms_median", "kills[].leader_ms", "kills[].errors",
		"outage_ms_median", "outage_ms_max", "target_seconds"} {
		if got, ok := lookup(v, path); !ok {
			t.Errorf("JSON has no %s", path)
		} else if _, ok := got.(float64); !ok {
			t.Errorf("%s = %v (%T), want a number", path, got, got)
		}
	}
	var rep FailoverReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Kills) != 1 || rep.Shards != 2 || rep.ReplicationFactor != 3 || rep.Nodes != 3 || rep.TargetSeconds != FailoverTargetSeconds ||
		rep.Mode != "busy" || rep.Signal != SignalKill || rep.NotRecovered != 0 {
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
	WriteFailoverText(&text, &rep)
	for _, want := range []string{"2 shards, RF 3 on 3 nodes", "mode       busy, signal kill", "outage max ms", "worst affected shard per kill", k.Node} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

// runFailover runs `bench failover` with args on a 3-node cluster it starts and
// returns the exit status, the JSON report, stderr and how long the run took.
func runFailover(t *testing.T, args ...string) (int, FailoverReport, string, time.Duration) {
	t.Helper()
	bin := benchBinary(t)
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"failover", "--binary", bin, "--dir", t.TempDir(), "--nodes", "3", "--json"}, args...),
		&stdout, &stderr)
	took := time.Since(start)
	var rep FailoverReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("failover = %d, JSON: %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
	}
	return code, rep, stderr.String(), took
}

// TestFailoverMainIdle runs the idle mode: 4 shards, 12 s without writes (the servers
// quiesce a shard after 5 s of ticks; a 7 s wait showed no quiesced shard, 10 s did),
// one kill, probes bounded by 6 s. It asserts what the harness must do whatever the
// servers do: finish, report every shard the killed node led with an outage or as not
// recovered, and fail the run when one did not recover.
func TestFailoverMainIdle(t *testing.T) {
	code, rep, stderr, took := runFailover(t, "--idle", "--idle-wait", "12s", "--shards", "4", "--kills", "1", "--timeout", "6s")
	if took > 50*time.Second {
		t.Errorf("idle failover took %v", took)
	}
	if rep.Mode != "idle" || rep.Signal != SignalKill || rep.IdleWaitSeconds != 12 || rep.ProbeIntervalMs != 100 || rep.ProbeTimeoutMs != 500 || len(rep.Kills) != 1 {
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
	if len(lost) > 0 && (code != ExitFailed || rep.Met || !strings.Contains(stderr, "took no write within 6s")) {
		t.Errorf("shards %v lost, yet exit %d, met %v; stderr:\n%s", lost, code, rep.Met, stderr)
	}
	// Idle shards fail over like busy ones (the wake loop): before it, shards the
	// killed node led stayed leaderless and this run exited ExitFailed.
	if len(lost) > 0 || code != ExitOK {
		t.Errorf("idle shards %v did not fail over; exit %d; stderr:\n%s", lost, code, stderr)
	}
	t.Logf("idle: killed %s leading shards %v: not recovered %v, per shard %+v, leaders %.1f ms %q, recover %.2f s; exit %d; took %v",
		k.Node, k.Shards, k.NotRecovered, k.PerShard, k.LeaderMs, k.LeaderError, k.RecoverSeconds, code, took.Round(time.Millisecond))
}

// TestFailoverMainStop runs the busy mode with SIGSTOP instead of SIGKILL: the node
// is paused, measured, continued, and the cluster is healthy again.
func TestFailoverMainStop(t *testing.T) {
	code, rep, stderr, took := runFailover(t, "--signal", "stop", "--shards", "2", "--rate", "400", "--kills", "1", "--settle", "1s",
		"--timeout", "15s", "--request-timeout", "1s")
	if code != ExitOK || rep.Mode != "busy" || rep.Signal != SignalStop || rep.RequestTimeoutSeconds != 1 || len(rep.Kills) != 1 {
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

func TestFailoverKillFailure(t *testing.T) {
	tests := []struct {
		name string
		kill FailoverKill
		want string
	}{
		{"all resumed", FailoverKill{Node: "n1", Shards: []int{0, 3}}, ""},
		{"lost shards", FailoverKill{Node: "n2", NotRecovered: []int{5, 7}}, "kill 2 (kill of n2): shards [5 7] took no write within 30s"},
		{"lost and no leader", FailoverKill{Node: "n3", NotRecovered: []int{1}, LeaderError: "shards [1] had no new leader within 30s of the kill"},
			"kill 2 (kill of n3): shards [1] took no write within 30s; shards [1] had no new leader within 30s of the kill"},
		{"only no leader", FailoverKill{Node: "n1", LeaderError: "boom"}, "kill 2 (kill of n1): boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := killFailure(2, tt.kill, SignalKill, 30*time.Second); got != tt.want {
				t.Errorf("killFailure = %q, want %q", got, tt.want)
			}
		})
	}
}
