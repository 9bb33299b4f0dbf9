package chaos

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"shardlog/proto/shardlogv1"
)

// Placement is a shard's voting replicas as the run saw them change: from AtMs (ms
// since the run started) until the shard's next Placement.
type Placement struct {
	Topic    string   `json:"topic"`
	Shard    uint32   `json:"shard"`
	AtMs     int64    `json:"at_ms"`
	Replicas []string `json:"replicas"`
}

// watchPlacements, in runs with kill-forever or drain, describes the cluster every
// second until the returned func is called (which waits for it) and records every
// change of a shard's voting replicas (a replica being added, or catching up, does not
// vote yet), so that the availability check follows the moves.
func (r *run) watchPlacements(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !takesNodes(r.cfg.Faults) {
			return
		}
		last := map[string][][]string{}
		for _, t := range r.topics {
			// NB: a deep copy: updating last must not rewrite the creation sets that
			// the history reports (seed 3 ended with every shard "created" on the
			// three nodes left at the end).
			last[t.Name] = make([][]string, len(t.Replicas))
			for k, rs := range t.Replicas {
				last[t.Name][k] = slices.Sorted(slices.Values(rs))
			}
		}
		everyTick(ctx, time.Second, func() { r.samplePlacements(ctx, last) })
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// samplePlacements records the shards whose voters differ from last (and updates it).
func (r *run) samplePlacements(ctx context.Context, last map[string][][]string) {
	resp, err := r.describeNewest(ctx)
	if err != nil {
		return
	}
	at := r.rec.sinceMs()
	for _, ti := range resp.GetTopics() {
		name := ti.GetSpec().GetName()
		prev, ok := last[name]
		if !ok {
			continue
		}
		for _, s := range ti.GetShards() {
			k := int(s.GetIndex())
			now := r.voters(s)
			if k >= len(prev) || slices.Equal(prev[k], now) {
				continue
			}
			prev[k] = now
			r.mu.Lock()
			r.placements = append(r.placements, Placement{Topic: name, Shard: uint32(k), AtMs: at, Replicas: now})
			r.mu.Unlock()
		}
	}
}

// voters names the nodes of a shard's voting replicas, sorted: all its replicas but a
// move's target while it is being added or catches up.
func (r *run) voters(s *shardlogv1.ShardInfo) []string {
	var out []string
	m := s.GetMove()
	for _, rep := range s.GetReplicas() {
		if m != nil && m.GetPhase() != "promoted" && rep.GetReplicaId() == m.GetToReplicaId() {
			continue
		}
		if i, ok := r.nodeIndex(rep.GetClientAddr()); ok {
			out = append(out, r.cl.Nodes()[i].Name)
		}
	}
	slices.Sort(out)
	return out
}

// noMajorityMoving is noMajority for a shard whose voters were initial and then
// changed (changes sorted by time): each set counts from its change to the next.
func noMajorityMoving(initial []string, changes []Placement, faults []FaultEvent) []Window {
	if len(changes) == 0 {
		return noMajority(initial, faults)
	}
	var out []Window
	cur, from := initial, int64(math.MinInt64)
	clip := func(to int64) {
		for _, w := range noMajority(cur, faults) {
			if w.StartMs, w.EndMs = max(w.StartMs, from), min(w.EndMs, to); w.EndMs > w.StartMs {
				out = append(out, w)
			}
		}
	}
	for _, c := range changes {
		clip(c.AtMs)
		cur, from = c.Replicas, c.AtMs
	}
	clip(math.MaxInt64)
	return mergeWindows(out)
}
