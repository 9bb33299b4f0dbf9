package chaos

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestSchedulePlanIsReplayableAndBounded(t *testing.T) {
	tests := []struct {
		name     string
		kinds    []string
		duration time.Duration
		minEach  int
	}{
		{"all faults, long run", AllFaults, 120 * time.Second, 2},
		{"process faults, short run", []string{FaultKill, FaultPause, FaultRestartAll}, 36 * time.Second, 1},
		{"kill only", []string{FaultKill}, 60 * time.Second, 3},
		{"nothing", nil, 60 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				a, b := Plan(seed, tt.kinds, tt.duration), Plan(seed, tt.kinds, tt.duration)
				if !reflect.DeepEqual(a, b) {
					t.Fatalf("seed %d: two plans differ", seed)
				}
				count := map[string]int{}
				var prevEnd time.Duration
				for _, s := range a {
					count[s.Kind]++
					if s.At < warmup || s.At < prevEnd || s.At+s.Hold > tt.duration || s.Hold <= 0 {
						t.Fatalf("seed %d: bad step %v after %v", seed, s, prevEnd)
					}
					if s.Kind == FaultPartition && !slices.Contains(partitionShapes, s.Shape) {
						t.Fatalf("seed %d: partition without shape: %v", seed, s)
					}
					prevEnd = s.At + s.Hold
				}
				for _, k := range tt.kinds {
					if count[k] < tt.minEach {
						t.Fatalf("seed %d: %s injected %d times, want >= %d (%v)", seed, k, count[k], tt.minEach, a)
					}
				}
			}
			if len(tt.kinds) > 0 && reflect.DeepEqual(Plan(1, tt.kinds, tt.duration), Plan(2, tt.kinds, tt.duration)) {
				t.Error("seeds 1 and 2 give the same plan")
			}
		})
	}
}

// TestSchedulePlanHasLongKills checks that some kills outlast the default availability
// bound (so a shard that recovers only when its leader returns fails the run) and that
// they aim at a leader.
func TestSchedulePlanHasLongKills(t *testing.T) {
	long, short := 0, 0
	for seed := uint64(1); seed <= 20; seed++ {
		longBefore := long
		var lastAll time.Duration
		for _, s := range Plan(seed, AllFaults, 120*time.Second) {
			if s.Kind == FaultKill && s.Hold >= longKill && s.At-lastAll < longKillAfter-time.Second {
				t.Fatalf("seed %d: long kill %v only %s after a partition or restart-all", seed, s, s.At-lastAll)
			}
			if s.Kind == FaultPartition || s.Kind == FaultRestartAll {
				lastAll = s.At + s.Hold
			}
			switch {
			case s.Kind != FaultKill:
			case s.Hold >= longKill:
				long++
				if !s.Leader || !s.Idle || s.At < longKillAfter || s.Hold > longKill+4*time.Second {
					t.Fatalf("seed %d: long kill %v", seed, s)
				}
			default:
				short++
			}
		}
		if long == longBefore {
			t.Errorf("seed %d: no long kill in 120 s: %v", seed, Plan(seed, AllFaults, 120*time.Second))
		}
	}
	if long == 0 || short == 0 || longKill <= 10*time.Second {
		t.Fatalf("%d long and %d short kills in 20 plans; long kills from %s", long, short, longKill)
	}
}

func TestSchedulePickQuiet(t *testing.T) {
	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	tests := []struct {
		name    string
		leaders []int
		idle    []time.Duration
		node    int
		quiet   []int
		ok      bool
	}{
		{"most quiet shards wins", []int{0, 1, 1, 2}, []time.Duration{sec(30), sec(13), sec(12), sec(1)}, 1, []int{1, 2}, true},
		{"tie goes to the longest idle", []int{0, 1}, []time.Duration{sec(13), sec(20)}, 1, []int{1}, true},
		{"none quiet: the longest idle", []int{0, 1, 2}, []time.Duration{sec(3), sec(9), sec(5)}, 1, nil, true},
		{"unknown leaders skipped", []int{-1, 2}, []time.Duration{sec(40), sec(1)}, 2, nil, true},
		{"no leader known", []int{-1}, []time.Duration{sec(40)}, 0, nil, false},
		{"lengths differ", []int{0}, nil, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, quiet, _, ok := pickQuiet(tt.leaders, tt.idle)
			if ok != tt.ok || (ok && (node != tt.node || !slices.Equal(quiet, tt.quiet))) {
				t.Fatalf("pickQuiet = %d %v %v, want %d %v %v", node, quiet, ok, tt.node, tt.quiet, tt.ok)
			}
		})
	}
}

func TestScheduleParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"kill,pause", []string{FaultKill, FaultPause}, false},
		{" restart-all , kill,kill", []string{FaultRestartAll, FaultKill}, false},
		{"", nil, false},
		{"kill,explode", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFaults(tt.in)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrUsage)) {
				t.Fatalf("err = %v", err)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSchedulePartitionSides(t *testing.T) {
	tests := []struct {
		name   string
		shape  string
		n      int
		leader int
		// sizes of the groups, and how many links are cut
		sizes []int
		pairs int
	}{
		{"majority of five", PartitionMajority, 5, -1, []int{2, 3}, 6},
		{"majority of three", PartitionMajority, 3, -1, []int{1, 2}, 2},
		{"isolated leader", PartitionIsolateLeader, 5, 3, []int{1, 4}, 4},
		{"isolated unknown leader", PartitionIsolateLeader, 5, -1, []int{1, 4}, 4},
		{"bridge of five", PartitionBridge, 5, -1, []int{2, 2, 1}, 4},
		{"bridge of three", PartitionBridge, 3, -1, []int{1, 1, 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for pick := uint64(0); pick < 10; pick++ {
				c := Sides(tt.shape, tt.n, pick, tt.leader)
				var sizes []int
				seen := map[int]bool{}
				for _, g := range c.Groups {
					sizes = append(sizes, len(g))
					for _, x := range g {
						if seen[x] {
							t.Fatalf("node %d in two groups: %v", x, c.Groups)
						}
						seen[x] = true
					}
				}
				if !reflect.DeepEqual(sizes, tt.sizes) || len(c.Pairs) != tt.pairs || len(seen) != tt.n {
					t.Fatalf("pick %d: groups %v pairs %v", pick, c.Groups, c.Pairs)
				}
				if tt.leader >= 0 && c.Groups[0][0] != tt.leader {
					t.Fatalf("leader %d not isolated: %v", tt.leader, c.Groups)
				}
				if tt.shape == PartitionBridge {
					b := c.Groups[2][0]
					for _, p := range c.Pairs {
						if p[0] == b || p[1] == b {
							t.Fatalf("bridge node %d cut off: %v", b, c.Pairs)
						}
					}
				}
				if !reflect.DeepEqual(c, Sides(tt.shape, tt.n, pick, tt.leader)) {
					t.Fatal("Sides is not deterministic")
				}
			}
		})
	}
}
