package chaos

import (
	"slices"
	"sort"
	"strings"
)

// hasMajority reports whether, during ev, some live replica could talk to a majority of
// replicas (itself included) that are live: what a Raft leader needs to commit.
func hasMajority(replicas []string, ev FaultEvent) bool {
	down := map[string]bool{}
	for _, n := range ev.Down {
		down[n] = true
	}
	cut := map[[2]string]bool{}
	for _, p := range ev.Cut {
		cut[p] = true
		cut[[2]string{p[1], p[0]}] = true
	}
	need := len(replicas)/2 + 1
	for _, l := range replicas {
		if down[l] {
			continue
		}
		n := 1
		for _, o := range replicas {
			if o != l && !down[o] && !cut[[2]string{l, o}] {
				n++
			}
		}
		if n >= need {
			return true
		}
	}
	return false
}

// noMajority returns the windows in which the replicas had no live, connected majority:
// at every moment the faults then in force (overlapping ones together) are combined.
func noMajority(replicas []string, faults []FaultEvent) []Window {
	var points []int64
	for _, f := range faults {
		if f.EndMs > f.StartMs {
			points = append(points, f.StartMs, f.EndMs)
		}
	}
	slices.Sort(points)
	points = slices.Compact(points)
	var out []Window
	for i := 1; i < len(points); i++ {
		w := Window{points[i-1], points[i]}
		var now FaultEvent
		active := false
		for _, f := range faults {
			if f.StartMs <= w.StartMs && f.EndMs >= w.EndMs && f.EndMs > f.StartMs {
				active = true
				now.Down = append(now.Down, f.Down...)
				now.Cut = append(now.Cut, f.Cut...)
			}
		}
		if active && !hasMajority(replicas, now) {
			out = append(out, w)
		}
	}
	return mergeWindows(out)
}

// replicasOf names the nodes holding a shard: from the topic's placement, else every
// node of the history, else every node a fault took down.
func (tc *topicCheck) replicasOf(shard uint32) []string {
	if int(shard) < len(tc.spec.Replicas) && len(tc.spec.Replicas[shard]) > 0 {
		return tc.spec.Replicas[shard]
	}
	if len(tc.h.Nodes) > 0 {
		return tc.h.Nodes
	}
	var out []string
	for _, f := range tc.h.Faults {
		for _, n := range f.Down {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// outage is one span in which a shard did not acknowledge anything.
type outage struct {
	Window
	// counted is the span's length minus the time the shard had no live majority.
	counted int64
}

// worstOutage returns, for one shard, the longest span from a send (sends: SentAtMs of
// every record sent to it, acknowledged or not) until the shard next acknowledged
// anything (acks: AtMs of its acknowledgements, sorted), or until horizon when nothing
// came, counting only the time outside excluded.
func worstOutage(sends, acks []int64, horizon int64, excluded []Window) outage {
	var best outage
	for _, s := range sends {
		end := horizon
		if i := sort.Search(len(acks), func(i int) bool { return acks[i] >= s }); i < len(acks) {
			end = acks[i]
		}
		if end <= s {
			continue
		}
		o := outage{Window: Window{s, end}, counted: end - s}
		for _, w := range excluded {
			o.counted -= overlap(o.Window, w)
		}
		if o.counted > best.counted {
			best = o
		}
	}
	return best
}

// checkAvailability measures every shard's worst outage. A shard is unwritable from a
// send until its next acknowledgement; the time in which the shard had no live,
// connected majority of its replicas (from the faults and, when replicas moved, the
// placements seen) is not counted. A shard whose
// counted outage exceeds the history's bound is an availability violation.
func (tc *topicCheck) checkAvailability() {
	tc.tr.ShardUnavailableMs = make([]int64, tc.spec.Shards)
	sends, acks := map[uint32][]int64{}, map[uint32][]int64{}
	horizon := tc.h.Workload.EndMs
	for _, a := range tc.acks {
		sends[a.Shard] = append(sends[a.Shard], a.SentAtMs)
		acks[a.Shard] = append(acks[a.Shard], a.AtMs)
		horizon = max(horizon, a.AtMs)
	}
	for _, f := range tc.fails {
		sends[f.Shard] = append(sends[f.Shard], f.SentAtMs)
	}
	for _, shard := range sortedKeys(sends) {
		replicas := tc.replicasOf(shard)
		var changes []Placement
		for _, p := range tc.h.Placements {
			if p.Topic == tc.spec.Name && p.Shard == shard {
				changes = append(changes, p)
			}
		}
		excluded := noMajorityMoving(replicas, changes, tc.h.Faults)
		slices.Sort(acks[shard])
		o := worstOutage(sends[shard], acks[shard], horizon, excluded)
		for uint32(len(tc.tr.ShardUnavailableMs)) <= shard {
			tc.tr.ShardUnavailableMs = append(tc.tr.ShardUnavailableMs, 0)
		}
		tc.tr.ShardUnavailableMs[shard] = o.counted
		if o.counted > tc.tr.MaxShardUnavailableMs {
			tc.tr.MaxShardUnavailableMs, tc.tr.WorstShard = o.counted, shard
		}
		if bound := tc.h.MaxUnavailableMs; bound > 0 && o.counted > bound {
			tc.r.UnavailableShards++
			tc.example("unavailable_shards", "shard %d (replicas %s) unwritable from %d ms to %d ms, %d ms of it with a live majority (bound %d ms)",
				shard, strings.Join(replicas, ","), o.StartMs, o.EndMs, o.counted, bound)
		}
	}
}
