package bench

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"shardlog/proto/shardlogv1"
)

func TestFailoverMostLeader(t *testing.T) {
	tests := []struct {
		name    string
		leaders []uint64
		want    uint64
	}{
		{"no shards", nil, 0},
		{"no leaders", []uint64{0, 0}, 0},
		{"one", []uint64{0, 7}, 7},
		{"majority", []uint64{3, 5, 5, 1, 5, 3}, 5},
		{"tie: lowest ID", []uint64{9, 4, 9, 4, 0}, 4},
		{"tie, lowest first seen last", []uint64{8, 8, 2, 2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mostLeader(tt.leaders); got != tt.want {
				t.Errorf("mostLeader(%v) = %d, want %d", tt.leaders, got, tt.want)
			}
		})
	}
}

func TestFailoverWithoutNewLeader(t *testing.T) {
	// Shard 0 (ID 100) and shard 3 (ID 103): replica r on node r for both; node 1 died.
	shards := []leaderShard{
		{index: 0, id: 100, nodeOf: map[uint64]uint64{1: 1, 2: 2, 3: 3}},
		{index: 3, id: 103, nodeOf: map[uint64]uint64{1: 1, 2: 2, 3: 3}},
	}
	st := func(id, leader uint64, hosted bool) *shardlogv1.ShardStatus {
		return &shardlogv1.ShardStatus{ShardId: id, LeaderReplicaId: leader, Hosted: hosted}
	}
	resp := func(s ...*shardlogv1.ShardStatus) *shardlogv1.ShardStatusResponse {
		return &shardlogv1.ShardStatusResponse{Shards: s}
	}
	tests := []struct {
		name  string
		resps []*shardlogv1.ShardStatusResponse
		want  []int
	}{
		{"no answers", nil, []int{0, 3}},
		{"survivors still see the dead leader", []*shardlogv1.ShardStatusResponse{resp(st(100, 1, true), st(103, 1, true))}, []int{0, 3}},
		{"no leader yet", []*shardlogv1.ShardStatusResponse{resp(st(100, 0, true), st(103, 0, true))}, []int{0, 3}},
		{"one shard elected", []*shardlogv1.ShardStatusResponse{resp(st(100, 2, true), st(103, 1, true))}, []int{3}},
		{"both, seen by different nodes", []*shardlogv1.ShardStatusResponse{
			resp(st(100, 3, true), st(103, 0, true)), resp(st(100, 0, true), st(103, 2, true))}, nil},
		{"not hosted is ignored", []*shardlogv1.ShardStatusResponse{resp(st(100, 2, false), st(103, 2, true))}, []int{0}},
		{"unknown replica is no leader", []*shardlogv1.ShardStatusResponse{resp(st(100, 9, true), st(103, 2, true))}, []int{0}},
		{"another shard's status is ignored", []*shardlogv1.ShardStatusResponse{resp(st(555, 2, true), st(103, 2, true))}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withoutNewLeader(tt.resps, shards, 1); !slices.Equal(got, tt.want) {
				t.Errorf("withoutNewLeader = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFailoverProbeOutages(t *testing.T) {
	killAt := time.Unix(1000, 0)
	boom := errors.New("rpc error: code = DeadlineExceeded")
	res := []probeResult{
		{shard: 2, acked: killAt.Add(850 * time.Millisecond), attempts: 3, lastErr: boom},
		{shard: 5, attempts: 40, lastErr: boom},
		{shard: 6, acked: killAt.Add(20 * time.Millisecond), attempts: 1},
	}
	per, failed := probeOutages(res, killAt)
	want := []ShardOutage{
		{Shard: 2, Recovered: true, OutageMs: 850, Attempts: 3, LastError: boom.Error()},
		{Shard: 5, Attempts: 40, LastError: boom.Error()},
		{Shard: 6, Recovered: true, OutageMs: 20, Attempts: 1},
	}
	if !slices.Equal(per, want) {
		t.Errorf("probeOutages = %+v\nwant %+v", per, want)
	}
	if failed != 2+40 {
		t.Errorf("failed attempts %d, want 42", failed)
	}
}

// fakeSender records each attempt's start and deadline and answers from answer.
type fakeSender struct {
	mu        sync.Mutex
	starts    []time.Time
	deadlines []time.Time
	answer    func(ctx context.Context, attempt int) error
}

func (f *fakeSender) send(ctx context.Context, _, attempt int) error {
	d, _ := ctx.Deadline()
	f.mu.Lock()
	f.starts, f.deadlines = append(f.starts, time.Now()), append(f.deadlines, d)
	f.mu.Unlock()
	return f.answer(ctx, attempt)
}

func TestFailoverProbeShard(t *testing.T) {
	failed := errors.New("unavailable")
	const interval, timeout = 20 * time.Millisecond, 50 * time.Millisecond
	tests := []struct {
		name   string
		answer func(ctx context.Context, attempt int) error
		bound  time.Duration
		acked  bool
		tries  func(int) bool
	}{
		{"third attempt succeeds", func(_ context.Context, n int) error {
			if n < 2 {
				return failed
			}
			return nil
		}, 5 * time.Second, true, func(n int) bool { return n == 3 }},
		{"never succeeds: stops at the deadline", func(context.Context, int) error { return failed },
			300 * time.Millisecond, false, func(n int) bool { return n >= 2 }},
		{"hangs: each attempt ends at its timeout", func(ctx context.Context, _ int) error {
			<-ctx.Done()
			return ctx.Err()
		}, 300 * time.Millisecond, false, func(n int) bool { return n >= 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSender{answer: tt.answer}
			start := time.Now()
			deadline := start.Add(tt.bound)
			res := probeShard(context.Background(), f.send, 4, start, deadline, interval, timeout)
			if res.shard != 4 || res.acked.IsZero() == tt.acked || !tt.tries(res.attempts) || res.attempts != len(f.starts) {
				t.Fatalf("probeShard = %+v after %d sends", res, len(f.starts))
			}
			if !tt.acked && (res.lastErr == nil || time.Now().Before(deadline)) {
				t.Errorf("gave up before the deadline or without an error: %+v", res)
			}
			for n, s := range f.starts {
				if s.Before(start.Add(time.Duration(n) * interval)) {
					t.Errorf("attempt %d started %v after the start, before its slot %v", n, s.Sub(start), time.Duration(n)*interval)
				}
				if d := f.deadlines[n]; d.After(s.Add(timeout)) || d.After(deadline) {
					t.Errorf("attempt %d: deadline %v after its start, beyond the %v timeout or the bound", n, d.Sub(s), timeout)
				}
			}
		})
	}
}

func TestFailoverProbeShardsCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fakeSender{answer: func(context.Context, int) error { return nil }}
	res := probeShards(ctx, f.send, []int{1, 3}, time.Now(), time.Now().Add(time.Minute), time.Millisecond, time.Second)
	if len(res) != 2 || res[0].shard != 1 || res[1].shard != 3 || !res[0].acked.IsZero() || len(f.starts) != 0 {
		t.Errorf("canceled probes = %+v, %d sends", res, len(f.starts))
	}
}
