package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"shardlog/localcluster"
	"shardlog/proto/shardlogv1"
)

func TestScaleConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*ScaleConfig)
		ok     bool
	}{
		{"defaults", func(*ScaleConfig) {}, true},
		{"no shards", func(sc *ScaleConfig) { sc.Shards = 0 }, false},
		{"active above shards", func(sc *ScaleConfig) { sc.Shards = 10 }, false},
		{"active equals shards", func(sc *ScaleConfig) { sc.Shards, sc.Active, sc.Compare = 10, 10, 2 }, true},
		{"compare zero", func(sc *ScaleConfig) { sc.Compare = 0 }, false},
		{"rf above nodes", func(sc *ScaleConfig) { sc.ReplicationFactor = 4 }, false},
		{"rf above nodes, existing cluster", func(sc *ScaleConfig) {
			sc.ReplicationFactor, sc.Config.Servers = 4, []string{"127.0.0.1:1"}
		}, true},
		{"negative idle", func(sc *ScaleConfig) { sc.Idle = -time.Second }, false},
		{"negative settle", func(sc *ScaleConfig) { sc.Settle = -time.Second }, false},
		{"zero idle", func(sc *ScaleConfig) { sc.Idle = 0 }, true},
		{"zero duration", func(sc *ScaleConfig) { sc.Duration = 0 }, false},
		{"no producers", func(sc *ScaleConfig) { sc.Producers = 0 }, false},
		{"negative record size", func(sc *ScaleConfig) { sc.RecordSize = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := DefaultScaleConfig()
			tt.modify(&sc)
			err := sc.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrUsage) {
				t.Fatalf("Validate = %v, not ErrUsage", err)
			}
		})
	}
}

func TestLeadersPerNode(t *testing.T) {
	shard := func(leader uint64) *shardlogv1.ShardInfo { return &shardlogv1.ShardInfo{LeaderNodeId: leader} }
	tests := []struct {
		name   string
		shards []*shardlogv1.ShardInfo
		want   int
		ok     bool
		counts map[string]int
	}{
		{"all led", []*shardlogv1.ShardInfo{shard(1), shard(2), shard(1)}, 3, true, map[string]int{"n1": 2, "2": 1}},
		{"one without leader", []*shardlogv1.ShardInfo{shard(1), shard(0), shard(1)}, 3, false, nil},
		{"too few shards", []*shardlogv1.ShardInfo{shard(1)}, 3, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := leadersPerNode(&shardlogv1.TopicInfo{Shards: tt.shards}, tt.want, map[uint64]string{1: "n1"})
			if ok != tt.ok || len(got) != len(tt.counts) {
				t.Fatalf("leadersPerNode = %v, %v; want %v, %v", got, ok, tt.counts, tt.ok)
			}
			for k, v := range tt.counts {
				if got[k] != v {
					t.Errorf("node %s: %d leaders, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestCPUPercent(t *testing.T) {
	s := func(cpu time.Duration) localcluster.ProcSample {
		return localcluster.ProcSample{CPU: cpu, PeakRSS: 1, RSS: 1}
	}
	tests := []struct {
		name          string
		before, after localcluster.ProcSample
		seconds, want float64
	}{
		{"half a core", s(time.Second), s(6 * time.Second), 10, 50},
		{"idle", s(time.Second), s(time.Second), 10, 0},
		{"missing sample", localcluster.ProcSample{}, s(time.Second), 10, 0},
		{"empty window", s(0), s(time.Second), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuPercent(tt.before, tt.after, tt.seconds); got != tt.want {
				t.Errorf("cpuPercent = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScaleMainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--active", "30", "--shards", "20"},
		{"--bogus"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(append([]string{"scale"}, args...), &stdout, &stderr); code != ExitUsage {
			t.Errorf("Main(scale %q) = %d, want %d; stderr %s", args, code, ExitUsage, stderr.String())
		}
	}
}

// TestScaleMainTiny runs the whole scale benchmark on a 1-node cluster it starts: 20
// shards, 2 s idle, two 2 s produce phases, extra server arguments, JSON and text.
func TestScaleMainTiny(t *testing.T) {
	bin := benchBinary(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"scale", "--binary", bin, "--dir", t.TempDir(), "--nodes", "1", "--shards", "20",
		"--active", "16", "--compare", "4", "--settle", "1s", "--idle", "2s", "--duration", "2s",
		"--server-args", "--log-level=error", "--json"}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("scale = %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep ScaleReport
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
	for _, p := range []ScaleProduce{rep.Active, rep.Compare} {
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
	WriteScaleText(&text, &rep)
	for _, want := range []string{"20 shards, RF 1 on 1 nodes, server args --log-level=error", "idle CPU %", "ratio      16 shards reach", "leaders    n1: 20"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}
