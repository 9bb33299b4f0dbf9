package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"

	"shardlog/localcluster"
)

// Fault injection: resolving a step's target on the live cluster and running it.

// leaderOf returns the index of the node leading shard number pick%n, counting the n
// shards of all the run's topics in turn.
func (r *run) leaderOf(ctx context.Context, pick uint64) (int, bool) {
	var total uint64
	for _, t := range r.topics {
		total += uint64(t.Shards)
	}
	if total == 0 {
		return 0, false
	}
	k := pick % total
	for _, t := range r.topics {
		if k < uint64(t.Shards) {
			return r.leaderOfShard(ctx, t.Name, int(k))
		}
		k -= uint64(t.Shards)
	}
	return 0, false
}

// leaders returns, per shard of topic, the index of the node leading it (-1: unknown).
func (r *run) leaders(ctx context.Context, topic string) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := r.adm.DescribeTopic(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(info.GetShards()))
	for k, s := range info.GetShards() {
		out[k] = -1
		for _, rep := range s.GetReplicas() {
			if rep.GetNodeId() == s.GetLeaderNodeId() && s.GetLeaderNodeId() != 0 {
				if i, ok := r.nodeIndex(rep.GetClientAddr()); ok {
					out[k] = i
				}
			}
		}
	}
	return out, nil
}

// leaderOfShard returns the index of the node leading shard k of topic.
func (r *run) leaderOfShard(ctx context.Context, topic string, k int) (int, bool) {
	ls, err := r.leaders(ctx, topic)
	if err != nil || k >= len(ls) || ls[k] < 0 {
		return 0, false
	}
	return ls[k], true
}

// quietFor is how long an idle shard must have had no record before a long kill counts
// it as quiet: dragonboat quiesces a shard after 10 s without traffic.
const quietFor = 12 * time.Second

// target picks the node a kill or pause hits: with s.Idle the node leading the most idle
// shards that have been quiet for quietFor (ties: the one leading the shard idle
// longest), with s.Leader a shard leader's, when known; and says why.
func (r *run) target(ctx context.Context, s Step) (int, string) {
	if s.Idle && r.idle != nil {
		if i, why, ok := r.quietLeader(ctx); ok && !r.isGone(i) {
			return i, why
		}
	}
	if s.Leader {
		if i, ok := r.leaderOf(ctx, s.Pick); ok && !r.isGone(i) {
			return i, "a shard leader"
		}
	}
	live := r.liveNodes() // every node until one is gone for good: then as before
	return live[s.Pick%uint64(len(live))], ""
}

// quietLeader returns the node leading the most quiet idle shards (see target).
func (r *run) quietLeader(ctx context.Context) (int, string, bool) {
	ls, err := r.leaders(ctx, IdleTopic)
	if err != nil {
		return 0, "", false
	}
	node, quiet, longest, ok := pickQuiet(ls, r.idle.idleFor())
	if !ok {
		return 0, "", false
	}
	return node, fmt.Sprintf("leader of %d %s shards quiet for %s or more (%v), one idle for %s",
		len(quiet), IdleTopic, quietFor, quiet, longest.Round(100*time.Millisecond)), true
}

// pickQuiet chooses, from each shard's leader (-1: unknown) and idle time, the node
// leading the most shards idle for quietFor or more, ties going to the node leading the
// shard idle longest. It returns the node, those shards and that longest idle time.
func pickQuiet(leaders []int, idle []time.Duration) (node int, quiet []int, longest time.Duration, ok bool) {
	if len(leaders) != len(idle) {
		return 0, nil, 0, false
	}
	quietOf := map[int][]int{}
	longestOf := map[int]time.Duration{}
	for k, l := range leaders {
		if l < 0 {
			continue
		}
		if idle[k] >= quietFor {
			quietOf[l] = append(quietOf[l], k)
		}
		longestOf[l] = max(longestOf[l], idle[k])
	}
	best := -1
	for _, l := range sortedKeys(longestOf) {
		if best < 0 || len(quietOf[l]) > len(quietOf[best]) ||
			(len(quietOf[l]) == len(quietOf[best]) && longestOf[l] > longestOf[best]) {
			best = l
		}
	}
	if best < 0 {
		return 0, nil, 0, false
	}
	return best, quietOf[best], longestOf[best], true
}

// idleLedBy returns the idle shards node i leads (all of them when that is not known).
func (r *run) idleLedBy(ctx context.Context, i int) []int {
	if r.idle == nil {
		return nil
	}
	ls, err := r.leaders(ctx, IdleTopic)
	var out []int
	for k, l := range ls {
		if err != nil || l == i || l < 0 {
			out = append(out, k)
		}
	}
	if err != nil {
		out = nil // all
	}
	return out
}

// inject runs the plan until the workload's duration is over.
func (r *run) inject(ctx context.Context, plan []Step) {
	end := r.rec.start.Add(r.cfg.Duration)
	for _, s := range plan {
		if wait := time.Until(r.rec.start.Add(s.At)); wait > 0 {
			sleepCtx(ctx, wait)
		}
		if ctx.Err() != nil || time.Now().Add(s.Hold).After(end) {
			break
		}
		r.log.Info("fault", "step", s.String())
		if err := r.runStep(ctx, s); err != nil {
			r.errorf("fault %s: %v", s, err)
		}
	}
	sleepCtx(ctx, time.Until(end))
}

func (r *run) runStep(ctx context.Context, s Step) error {
	ev := FaultEvent{Type: s.Kind, Window: Window{StartMs: r.rec.sinceMs()}}
	defer func() {
		ev.EndMs = r.rec.sinceMs()
		r.mu.Lock()
		r.faults = append(r.faults, ev)
		r.mu.Unlock()
	}()
	serving := func(i int) error {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return r.crashed(i, r.cl.WaitServing(wctx, i))
	}
	switch s.Kind {
	case FaultKill:
		i, why := r.target(ctx, s)
		ev.Nodes, ev.Detail = []string{r.cl.Nodes()[i].Name}, why
		ev.Down = ev.Nodes
		led := r.idleLedBy(ctx, i)
		if err := r.kill(i); err != nil {
			return err
		}
		r.log.Info("killed", "node", ev.Nodes[0], "target", why, "idle_shards_led", led)
		r.probeIdle(led)
		sleepCtx(ctx, s.Hold)
		if err := r.start(i); err != nil {
			return err
		}
		return serving(i)
	case FaultPause:
		i, why := r.target(ctx, s)
		ev.Nodes, ev.Detail = []string{r.cl.Nodes()[i].Name}, why
		ev.Down = ev.Nodes
		led := r.idleLedBy(ctx, i)
		if err := r.cl.Pause(i); err != nil {
			return err
		}
		r.probeIdle(led)
		sleepCtx(ctx, s.Hold)
		return r.cl.Resume(i)
	case FaultRestartAll:
		return r.restartAll(ctx, s, &ev)
	case FaultKillForever:
		return r.killForever(ctx, s, &ev)
	case FaultDrain:
		return r.drain(ctx, s, &ev)
	case FaultPartition:
		if r.net == nil {
			return errors.New("no network namespaces")
		}
		leader := -1
		if s.Shape == PartitionIsolateLeader {
			if i, ok := r.leaderOf(ctx, s.Pick); ok {
				leader = i
			}
		}
		sides := Sides(s.Shape, r.cfg.Nodes, s.Pick, leader)
		ev.Nodes = sides.describe(r.cl.Nodes())
		for _, p := range sides.Pairs {
			ev.Cut = append(ev.Cut, [2]string{r.cl.Nodes()[p[0]].Name, r.cl.Nodes()[p[1]].Name})
		}
		if err := r.net.Partition(sides); err != nil {
			return err
		}
		r.probeIdle(nil)
		sleepCtx(ctx, s.Hold)
		return r.net.Heal()
	}
	return fmt.Errorf("unknown fault %q", s.Kind)
}

// restartAll kills every node (but those gone for good), waits s.Hold, starts them all
// again and waits until each serves.
func (r *run) restartAll(ctx context.Context, s Step, ev *FaultEvent) error {
	live := r.liveNodes()
	for _, i := range live {
		n := r.cl.Nodes()[i]
		ev.Nodes = append(ev.Nodes, n.Name)
		ev.Down = append(ev.Down, n.Name)
		if err := r.kill(i); err != nil {
			return err
		}
	}
	r.probeIdle(nil)
	sleepCtx(ctx, s.Hold)
	for _, i := range live {
		if err := r.start(i); err != nil {
			return err
		}
	}
	// One deadline for all: nodes start in parallel, so waiting for each in turn
	// costs no more than waiting for the slowest.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var errs []error
	for _, i := range live {
		errs = append(errs, r.crashed(i, r.cl.WaitServing(wctx, i)))
	}
	return errors.Join(errs...)
}

// heal resumes every paused node of c and starts every node that is not running, but
// those gone for good.
func heal(c *localcluster.Cluster, gone func(int) bool) error {
	var errs []error
	for i := range c.Nodes() {
		switch {
		case gone(i):
		case c.Paused(i):
			errs = append(errs, c.Resume(i))
		case !c.Running(i):
			errs = append(errs, c.StartNode(i))
		}
	}
	return errors.Join(errs...)
}
