package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault types, as named by --faults.
const (
	FaultKill       = "kill"
	FaultPause      = "pause"
	FaultPartition  = "partition"
	FaultRestartAll = "restart-all"
	// FaultKillForever SIGKILLs one node and never restarts it (at most once a run).
	FaultKillForever = "kill-forever"
	// FaultDrain drains one live node under load, removes it and stops it for good (at
	// most once a run).
	FaultDrain = "drain"
)

// AllFaults lists every fault type in a fixed order.
var AllFaults = []string{FaultKill, FaultPause, FaultPartition, FaultRestartAll, FaultKillForever, FaultDrain}

// DefaultFaults are the fault types `shardlog chaos` injects unless told otherwise: those
// that give every node back.
var DefaultFaults = []string{FaultKill, FaultPause, FaultPartition, FaultRestartAll}

// oneShot reports whether fault type k runs at most once a run: it takes a node away
// for good.
func oneShot(k string) bool { return k == FaultKillForever || k == FaultDrain }

// Shape is what Plan needs to know of the cluster: how many nodes a fault that takes
// one away for good may leave.
type Shape struct {
	Nodes, ReplicationFactor int
}

// minMetaNodes is the fewest nodes the meta group (three voters) is left with.
const minMetaNodes = 3

// fitting returns kinds without the one-shot faults the cluster cannot spare a node
// for. After a kill-forever the live nodes must still be at least the replication
// factor + 1 when a drain is also planned (the drain needs a node to move to), else
// the replication factor; after a drain (and a kill-forever, if planned) at least the
// replication factor; always at least minMetaNodes. When only one fits, kill-forever
// stays.
func fitting(kinds []string, shape Shape) []string {
	floor := max(shape.ReplicationFactor, minMetaNodes)
	kf, dr := slices.Contains(kinds, FaultKillForever), slices.Contains(kinds, FaultDrain)
	keepKF := kf && shape.Nodes-1 >= floor
	keepDrain := dr && shape.Nodes-1-btoi(keepKF) >= floor
	return slices.DeleteFunc(slices.Clone(kinds), func(k string) bool {
		return (k == FaultKillForever && !keepKF) || (k == FaultDrain && !keepDrain)
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Partition shapes.
const (
	// PartitionMajority splits the nodes into a majority and a minority.
	PartitionMajority = "majority-minority"
	// PartitionIsolateLeader cuts one shard leader's node off from all others.
	PartitionIsolateLeader = "isolated-leader"
	// PartitionBridge makes two halves that cannot see each other while one node sees both.
	PartitionBridge = "bridge"
)

var partitionShapes = []string{PartitionMajority, PartitionIsolateLeader, PartitionBridge}

// Step is one planned fault. Targets that depend on the live cluster (which node leads
// a shard) are resolved when the step runs, from Pick.
type Step struct {
	// At is when the fault starts, measured from the start of the workload. A step that
	// is late (the previous one took longer to heal) starts as soon as it can.
	At time.Duration
	// Kind is the fault type.
	Kind string
	// Hold is how long the fault lasts before it is healed.
	Hold time.Duration
	// Leader aims kill and pause at the node that leads shard Pick%shards.
	Leader bool
	// Idle aims a kill at the node that leads the idle shard written longest ago (long
	// kills), else as Leader.
	Idle bool
	// Pick chooses the target node or shard at run time.
	Pick uint64
	// Shape is the partition's shape (partition only).
	Shape string
}

// String describes the step for the progress log.
func (s Step) String() string {
	extra := ""
	switch {
	case s.Kind == FaultPartition:
		extra = " shape=" + s.Shape
	case s.Idle:
		extra = " target=idle-leader"
	case s.Leader:
		extra = " target=leader"
	}
	return fmt.Sprintf("t=%s %s hold=%s%s", s.At.Round(time.Millisecond), s.Kind, s.Hold.Round(time.Millisecond), extra)
}

// ParseFaults parses a comma-separated list of fault types.
func ParseFaults(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("%w: unknown fault %q (want some of %s)", ErrUsage, f, strings.Join(AllFaults, ","))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// NewRand returns the PCG generator every seeded choice of a run comes from.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// warmup is the fault-free time at the start of the workload.
const warmup = 3 * time.Second

// longKill is the shortest hold of a long kill (the first kill from longKillAfter on,
// then one kill in three; up to 4 s longer).
// Long kills start no earlier than longKillAfter into the workload and 1 s less after
// the heal of the last partition or restart-all (which probe every idle shard), when
// idle shards have had time to go quiet (dragonboat quiesces a shard after 10 s without
// traffic).
const (
	longKill      = 12 * time.Second
	longKillAfter = 15 * time.Second
)

// drainHold is the time the schedule sets aside for a drain (the step takes as long as
// the drain does, up to Config.DrainTimeout); killForeverHold likewise for a kill-forever.
const (
	drainHold       = 20 * time.Second
	killForeverHold = time.Second
)

// Plan returns the fault schedule for a run: a pure function of seed, the fault types,
// the workload's duration and the cluster's shape. Faults run one at a time; the types
// rotate through a fresh random permutation each round, so every type recurs evenly,
// except kill-forever and drain: at most once each, and only when the cluster can spare
// the node (fitting). Without them the schedule is what it was before they existed.
func Plan(seed uint64, kinds []string, duration time.Duration, shape Shape) []Step {
	kinds = fitting(kinds, shape)
	if len(kinds) == 0 {
		return nil
	}
	used := map[string]bool{}
	rng := NewRand(seed)
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	var steps []Step
	at := warmup
	longDone := false // the first kill from longKillAfter on is long, later ones one in three
	var lastAll time.Duration
	for {
		round := slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return used[k] })
		if len(round) == 0 {
			return steps
		}
		rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		for _, k := range round {
			s := Step{At: at, Kind: k, Pick: rng.Uint64()}
			recover := time.Duration(0)
			switch k {
			case FaultKill:
				s.Hold, s.Leader = between(time.Second, 5*time.Second), rng.IntN(10) < 6
				recover = 2 * time.Second
				if at >= longKillAfter && (!longDone || rng.IntN(3) == 0) {
					// A long kill of a leader outlasts the default availability bound
					// (10 s): a shard that only recovers when its old leader returns
					// (an idle shard that never fails over) is then caught. It waits
					// until idle shards had time to go quiet; one that would not fit in
					// the run stays short.
					start := max(at, lastAll+longKillAfter-time.Second)
					if hold := between(longKill, longKill+4*time.Second); start+hold+recover <= duration {
						s.At, s.Hold, s.Leader, s.Idle, longDone = start, hold, true, true, true
					}
				}
			case FaultPause:
				s.Hold, s.Leader = between(time.Second, 5*time.Second), rng.IntN(10) < 6
			case FaultPartition:
				s.Hold, s.Shape = between(3*time.Second, 8*time.Second), partitionShapes[rng.IntN(len(partitionShapes))]
			case FaultRestartAll:
				s.Hold = between(500*time.Millisecond, 2*time.Second)
				recover = 5 * time.Second
			case FaultKillForever:
				s.Hold, s.Leader = killForeverHold, rng.IntN(10) < 6
				recover = 2 * time.Second
			case FaultDrain:
				s.Hold = drainHold
				recover = 2 * time.Second
			}
			gap := between(2*time.Second, 4*time.Second)
			if s.At+s.Hold+recover > duration {
				return steps
			}
			steps = append(steps, s)
			used[k] = oneShot(k)
			if k == FaultPartition || k == FaultRestartAll {
				lastAll = s.At + s.Hold // they probe (and wake) every idle shard
			}
			at = s.At + s.Hold + recover + gap
		}
	}
}
