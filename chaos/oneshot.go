package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"shardlog/proto/shardlogv1"
)

// Running the faults that take a node away for good: kill-forever and drain.

// goneNode is a node the run took away for good.
type goneNode struct {
	num uint32 // readable number (0: unknown)
	why string // "killed forever" or "drained and removed"
}

// isGone reports whether node i was taken away for good.
func (r *run) isGone(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.gone[i]
	return ok
}

// markGone records node i as gone for good.
func (r *run) markGone(i int, num uint32, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone == nil {
		r.gone = map[int]goneNode{}
	}
	r.gone[i] = goneNode{num: num, why: why}
}

// liveNodes returns the indexes of the nodes not gone for good.
func (r *run) liveNodes() []int {
	var out []int
	for i := range r.cl.Nodes() {
		if !r.isGone(i) {
			out = append(out, i)
		}
	}
	return out
}

// nodeNum returns node i's readable number and how many replicas it holds, from
// DescribeCluster.
func (r *run) nodeNum(ctx context.Context, i int) (num uint32, replicas int, moves []*shardlogv1.MoveInfo, err error) {
	resp, err := r.describeNewest(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	for _, n := range resp.GetNodes() {
		if n.GetClientAddr() == r.cl.Nodes()[i].Addr {
			return n.GetNum(), int(n.GetReplicas()), resp.GetMoves(), nil
		}
	}
	return 0, 0, nil, fmt.Errorf("%s (%s) not in the cluster description", r.cl.Nodes()[i].Name, r.cl.Nodes()[i].Addr)
}

// killForever SIGKILLs one node (a shard leader's when s.Leader) and never starts it
// again. Its event lasts until the end of the run.
func (r *run) killForever(ctx context.Context, s Step, ev *FaultEvent) error {
	i, why := r.target(ctx, s)
	name := r.cl.Nodes()[i].Name
	ev.Nodes, ev.Down, ev.Detail, ev.Forever = []string{name}, []string{name}, why, true
	num, _, _, err := r.nodeNum(ctx, i)
	if err != nil {
		r.log.Warn("kill-forever: readable number unknown", "node", name, "err", err)
	}
	led := r.idleLedBy(ctx, i)
	r.markGone(i, num, "killed forever")
	if err := r.kill(i); err != nil {
		return err
	}
	kf := &KillForeverResult{Node: name, Num: num, AtMs: r.rec.sinceMs(), FullReplicationMs: -1}
	r.mu.Lock()
	r.killed = kf
	r.mu.Unlock()
	r.log.Info("killed forever", "node", name, "num", num, "target", why, "idle_shards_led", led)
	r.probeIdle(led)
	r.watchFullReplication(ctx, kf)
	sleepCtx(ctx, s.Hold)
	return nil
}

// drain drains one live node (chosen by s.Pick) under load: DrainNode, wait (at most
// DrainTimeout) until it holds no replica and no move from it is in progress, then
// RemoveNode and stop its process for good. A drain that does not finish in time is
// cancelled and recorded as failed (a violation); the node then stays.
func (r *run) drain(ctx context.Context, s Step, ev *FaultEvent) error {
	// NB: among the nodes whose process runs: seed 3 once drained n5, which had
	// panicked at its restart (its replicas moved as a dead node's would).
	live := slices.DeleteFunc(r.liveNodes(), func(i int) bool { return !r.cl.Running(i) })
	if len(live) == 0 {
		return errors.New("drain: no node is running")
	}
	i := live[s.Pick%uint64(len(live))]
	name := r.cl.Nodes()[i].Name
	ev.Nodes = []string{name}
	res := &DrainResult{Node: name, StartMs: r.rec.sinceMs()}
	defer func() {
		r.mu.Lock()
		r.drained = res
		r.mu.Unlock()
	}()
	// Plan counted on every node but those taken for good; a server that crashed
	// since (seed 3) can leave too few, and the servers then refuse the drain.
	if floor := max(r.cfg.ReplicationFactor, minMetaNodes); len(live)-1 < floor {
		res.Skipped = fmt.Sprintf("only %d nodes run: draining one would leave fewer than %d", len(live), floor)
		ev.Detail = "skipped: " + res.Skipped
		r.log.Warn("drain skipped", "why", res.Skipped)
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	start := time.Now()
	err := r.drainNode(dctx, i, res)
	res.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		res.Err = fmt.Sprintf("drain of %s (node %d, %d replicas) did not finish within %s: %v",
			name, res.Num, res.Moved, r.cfg.DrainTimeout, err)
		if res.Num != 0 {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = r.adm.DrainNode(cctx, res.Num, true)
			ccancel()
		}
		r.log.Warn("drain failed", "err", res.Err)
		return nil // a violation, not a harness error
	}
	r.log.Info("drained", "node", name, "num", res.Num, "moved", res.Moved, "took", time.Since(start).Round(time.Millisecond))
	if err := r.removeNode(ctx, i, res); err != nil {
		res.Err = fmt.Sprintf("remove %s (node %d) after its drain: %v", name, res.Num, err)
		r.log.Warn("remove failed", "err", res.Err)
	}
	return nil
}

// drainNode starts the drain of node i and waits until it holds no replica and no move
// from it is in progress; it fills in res.Num and res.Moved.
func (r *run) drainNode(ctx context.Context, i int, res *DrainResult) error {
	for attempt := 1; ; attempt++ {
		num, held, moves, err := r.nodeNum(ctx, i)
		if err == nil {
			res.Num, res.Moved = num, held
			// NB: each attempt is bounded: seed 3 saw no drain reach the servers in
			// 60 s with one call given the whole budget.
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = r.adm.DrainNode(actx, num, false)
			cancel()
		}
		if err == nil {
			r.log.Info("drain started", "node", res.Node, "num", res.Num, "replicas", res.Moved, "moves_before", len(moves), "attempt", attempt)
			break
		}
		r.log.Warn("drain: start failed; retrying", "node", res.Node, "attempt", attempt, "err", err)
		if ctx.Err() != nil {
			return fmt.Errorf("start (%d attempts): %w", attempt, err)
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
	held, moves := -1, -1 // as last seen
	for {
		h, m, err := r.heldBy(ctx, i, res.Num)
		if err == nil {
			held, moves = h, m
		}
		if err == nil && held == 0 && moves == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("last seen holding %d replicas with %d moves from it in progress (last error: %v)", held, moves, err)
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
}

// heldBy returns how many replicas node num holds and how many moves from it are in
// progress.
func (r *run) heldBy(ctx context.Context, i int, num uint32) (held, moves int, err error) {
	_, held, ms, err := r.nodeNum(ctx, i)
	if err != nil {
		return -1, -1, err
	}
	for _, m := range ms {
		if m.GetFromNode() == num {
			moves++
		}
	}
	return held, moves, nil
}

// removeNode removes the drained node i from the cluster (retrying, at most 30 s),
// stops its process for good and records its absence until the end of the run.
func (r *run) removeNode(ctx context.Context, i int, res *DrainResult) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	for {
		if _, err = r.adm.RemoveNode(rctx, res.Num); err == nil {
			break
		}
		if rctx.Err() != nil {
			return err
		}
		sleepCtx(rctx, 500*time.Millisecond)
	}
	r.markGone(i, res.Num, "drained and removed")
	if err := r.kill(i); err != nil {
		return errors.Join(errors.New("stop"), err)
	}
	res.Removed = true
	name := r.cl.Nodes()[i].Name
	r.mu.Lock()
	r.faults = append(r.faults, FaultEvent{Type: FaultDrain, Nodes: []string{name}, Down: []string{name},
		Window: Window{StartMs: r.rec.sinceMs()}, Forever: true, Continued: true,
		Detail: "removed after its drain, stopped for good"})
	r.mu.Unlock()
	r.log.Info("removed and stopped", "node", name, "num", res.Num)
	return nil
}

// crashed passes on err, the outcome of waiting for node i to serve after a restart;
// when the process exited instead (a server that cannot start), err gains the panic
// line of its log (watchExit records the crash for the availability check).
func (r *run) crashed(i int, err error) error {
	if err == nil || r.cl.Running(i) {
		return err
	}
	return fmt.Errorf("%w: %s", err, panicLine(filepath.Join(r.dir, r.cl.Nodes()[i].Name+".log")))
}

// kill SIGKILLs node i on purpose (watchExit then stays quiet).
func (r *run) kill(i int) error {
	r.mu.Lock()
	if r.expectDown == nil {
		r.expectDown = map[int]bool{}
	}
	r.expectDown[i] = true
	r.mu.Unlock()
	return r.cl.Kill(i)
}

// start starts node i again and watches its process.
func (r *run) start(i int) error {
	r.mu.Lock()
	delete(r.expectDown, i)
	r.mu.Unlock()
	if err := r.cl.StartNode(i); err != nil {
		return err
	}
	r.watchExit(i)
	return nil
}

// watchExit waits (in a goroutine) for node i's current process to exit. An exit the
// run did not cause (a server that panicked, e.g. at its start) is a harness error
// quoting the panic line of its log, and the node counts as down from then to the end
// of the run: it is not restarted before the end.
func (r *run) watchExit(i int) {
	done, _ := r.cl.Exited(i)
	if done == nil {
		return
	}
	go func() {
		<-done
		r.mu.Lock()
		expected := r.expectDown[i] || r.closing
		r.mu.Unlock()
		if expected {
			return
		}
		name := r.cl.Nodes()[i].Name
		why := panicLine(filepath.Join(r.dir, name+".log"))
		r.mu.Lock()
		r.faults = append(r.faults, FaultEvent{Type: "crash", Nodes: []string{name}, Down: []string{name},
			Window: Window{StartMs: r.rec.sinceMs()}, Forever: true, Continued: true, Detail: "exited on its own: " + why})
		r.mu.Unlock()
		r.errorf("%s exited on its own: %s", name, why)
	}()
}

// panicLine returns the last "panic:" line of a server's log ("" when none).
func panicLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	last := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "panic:") {
			last = line
		}
	}
	return last
}
