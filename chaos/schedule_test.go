package chaos

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

var fiveNodes = Shape{Nodes: 5, ReplicationFactor: 3}

func TestSchedulePlanIsReplayableAndBounded(t *testing.T) {
	tests := []struct {
		name     string
		kinds    []string
		duration time.Duration
		minEach  int
	}{
		{"default faults, long run", DefaultFaults, 120 * time.Second, 2},
		{"process faults, short run", []string{FaultKill, FaultPause, FaultRestartAll}, 36 * time.Second, 1},
		{"kill only", []string{FaultKill}, 60 * time.Second, 3},
		{"nothing", nil, 60 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				a, b := Plan(seed, tt.kinds, tt.duration, fiveNodes), Plan(seed, tt.kinds, tt.duration, fiveNodes)
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
			if len(tt.kinds) > 0 && reflect.DeepEqual(Plan(1, tt.kinds, tt.duration, fiveNodes), Plan(2, tt.kinds, tt.duration, fiveNodes)) {
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
		for _, s := range Plan(seed, DefaultFaults, 120*time.Second, fiveNodes) {
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
			t.Errorf("seed %d: no long kill in 120 s: %v", seed, Plan(seed, DefaultFaults, 120*time.Second, fiveNodes))
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

// TestSchedulePlanTakesNodesAtMostOnce checks that kill-forever and drain are planned at
// most once a run each, that most seeds plan them, and that asking for them leaves the
// other faults' schedule up to them as it was.
func TestSchedulePlanTakesNodesAtMostOnce(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(1); seed <= 30; seed++ {
		count := map[string]int{}
		for _, s := range Plan(seed, AllFaults, 120*time.Second, fiveNodes) {
			count[s.Kind]++
			if s.Kind == FaultDrain && s.Hold != drainHold {
				t.Fatalf("seed %d: drain %v", seed, s)
			}
		}
		for _, k := range []string{FaultKillForever, FaultDrain} {
			if count[k] > 1 {
				t.Fatalf("seed %d: %s planned %d times", seed, k, count[k])
			}
			seen[k] += count[k]
		}
		// One-shot faults that do not fit are dropped before any random choice.
		if a, b := Plan(seed, DefaultFaults, 60*time.Second, fiveNodes),
			Plan(seed, AllFaults, 60*time.Second, Shape{Nodes: 3, ReplicationFactor: 3}); !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: plans differ when the one-shot faults do not fit:\n%v\n%v", seed, a, b)
		}
	}
	if seen[FaultKillForever] < 25 || seen[FaultDrain] < 25 {
		t.Fatalf("in 30 seeds of 120 s: %v", seen)
	}
}

// TestSchedulePlanTakesNodesOnlyWhenEnoughRemain checks the node-count limits: after a
// kill-forever at least RF+1 live nodes when a drain is planned too, else RF; after a
// drain at least RF; always at least 3 for the meta group.
func TestSchedulePlanTakesNodesOnlyWhenEnoughRemain(t *testing.T) {
	both := []string{FaultKill, FaultKillForever, FaultDrain}
	tests := []struct {
		name  string
		kinds []string
		shape Shape
		want  []string // the one-shot faults kept
	}{
		{"five nodes rf 3: both", both, Shape{5, 3}, []string{FaultKillForever, FaultDrain}},
		{"six nodes rf 3: both", both, Shape{6, 3}, []string{FaultKillForever, FaultDrain}},
		{"four nodes rf 3: kill-forever only", both, Shape{4, 3}, []string{FaultKillForever}},
		{"four nodes rf 3, drain alone", []string{FaultDrain}, Shape{4, 3}, []string{FaultDrain}},
		{"three nodes rf 3: neither", both, Shape{3, 3}, nil},
		{"five nodes rf 5: neither", both, Shape{5, 5}, nil},
		{"four nodes rf 1: meta keeps 3", both, Shape{4, 1}, []string{FaultKillForever}},
		{"five nodes rf 4: kill-forever only", both, Shape{5, 4}, []string{FaultKillForever}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.DeleteFunc(fitting(tt.kinds, tt.shape), func(k string) bool { return !oneShot(k) })
			if !slices.Equal(got, tt.want) {
				t.Fatalf("fitting kept %v, want %v", got, tt.want)
			}
			for seed := uint64(1); seed <= 10; seed++ {
				for _, s := range Plan(seed, tt.kinds, 120*time.Second, tt.shape) {
					if oneShot(s.Kind) && !slices.Contains(tt.want, s.Kind) {
						t.Fatalf("seed %d plans %v on %+v", seed, s, tt.shape)
					}
				}
			}
		})
	}
}
