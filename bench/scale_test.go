package bench

import (
	"errors"
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
