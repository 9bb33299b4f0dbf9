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

func TestFailoverReportJSONShape(t *testing.T) {
	r := &FailoverReport{TargetSeconds: FailoverTargetSeconds, Kills: []FailoverKill{{
		Node: "n1", NodeID: 1, Shards: []int{0}, OutageMsMax: 900, OutageMsMedian: 900, LeaderMs: 300,
		PerShard: []ShardOutage{{Shard: 0, OutageMs: 900, Recovered: true, Attempts: 1}},
	}}}
	r.summarize()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"kills[].outage_ms_max", "kills[].per_shard[].outage_ms", "kills[].outage_ms_median", "kills[].leader_ms", "kills[].errors",
		"outage_ms_median", "outage_ms_max", "target_seconds"} {
		if got, ok := lookup(v, path); !ok {
			t.Errorf("JSON has no %s", path)
		} else if _, ok := got.(float64); !ok {
			t.Errorf("%s = %v (%T), want a number", path, got, got)
		}
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
