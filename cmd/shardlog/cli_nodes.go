package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"shardlog/client"
	"shardlog/proto/shardlogv1"
)

// drainWaitDefault bounds `node drain --wait` when --timeout is not given: moving a
// node's replicas takes as long as copying their data, far more than one request.
const drainWaitDefault = 10 * time.Minute

// drainPoll is how often `node drain --wait` reads DescribeCluster.
const drainPoll = 500 * time.Millisecond

// nodeRow is one node of `node list --json`. Its shape is ours (not the proto's):
// nodes go by their readable number; the 64-bit node ID stays internal.
type nodeRow struct {
	Node          uint32 `json:"node"`
	State         string `json:"state"`
	Draining      bool   `json:"draining"`
	Zone          string `json:"zone"`
	MetaVoter     bool   `json:"meta_voter"`
	MetaLeader    bool   `json:"meta_leader"`
	Replicas      uint32 `json:"replicas"`
	Leaders       uint32 `json:"leaders"`
	DiskFull      bool   `json:"disk_full"`
	Disk          string `json:"disk"`
	DiskFreeBytes uint64 `json:"disk_free_bytes"`
	ClientAddr    string `json:"client_addr"`
}

func nodeRows(cl *shardlogv1.DescribeClusterResponse) []nodeRow {
	rows := []nodeRow{}
	for _, n := range nodesByNum(cl) {
		rows = append(rows, nodeRow{
			Node: n.GetNum(), State: n.GetState(), Draining: n.GetDraining(), Zone: n.GetZone(),
			MetaVoter: n.GetMetaVoter(), MetaLeader: n.GetNum() != 0 && n.GetNum() == cl.GetMetaLeaderNum(),
			Replicas: n.GetReplicas(), Leaders: n.GetLeaders(), DiskFull: n.GetDiskFull(), Disk: diskString(n),
			DiskFreeBytes: n.GetDiskFreeBytes(), ClientAddr: n.GetClientAddr(),
		})
	}
	return rows
}

func cmdNodeList(ctx context.Context, e *env, g globals, args []string) error {
	return clusterCommand(ctx, e, g, args, "node list", "print a JSON array, one object per node", func(cl *shardlogv1.DescribeClusterResponse, asJSON bool) error {
		rows := nodeRows(cl)
		if asJSON {
			return writeJSON(e.stdout, rows)
		}
		fmt.Fprintf(e.stdout, "answered by node %s, meta leader %s\n", numString(cl.GetThisNodeNum()), metaLeaderString(cl))
		tw := table(e.stdout)
		fmt.Fprintln(tw, "NODE\tSTATE\tZONE\tMETA\tREPLICAS\tLEADERS\tDISK\tCLIENT")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", numString(r.Node), stateString(r.State, r.Draining),
				orDash(r.Zone), metaString(r.MetaVoter, r.MetaLeader), r.Replicas, r.Leaders, r.Disk, r.ClientAddr)
		}
		return tw.Flush()
	})
}

// parseNodeNum reads a node number argument: 1 or more, as node list shows it.
func parseNodeNum(cmd, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	switch {
	case err != nil:
		return 0, usagef(cmd, "node number %q: want a number as shardlog node list shows it (1, 2, ...)", s)
	case n == 0:
		return 0, usagef(cmd, "node number 0 is invalid: nodes are numbered from 1 (see shardlog node list)")
	}
	return uint32(n), nil
}

// drainOpts are the node drain command's flags.
type drainOpts struct {
	num                  uint32
	wait, cancel, asJSON bool
	bound                time.Duration // of the whole --wait
}

func cmdNodeDrain(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("node drain", &g)
	var o drainOpts
	fs.BoolVar(&o.wait, "wait", false, "follow the moves until the node holds no replica and leads nothing\n"+
		"(bounded by --timeout, default "+drainWaitDefault.String()+" here)")
	fs.BoolVar(&o.cancel, "cancel", false, "stop the drain: the node receives replicas again")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object at the end")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	if o.num, err = parseNodeNum(fs.Name(), pos[0]); err != nil {
		return err
	}
	if o.wait && o.cancel {
		return usagef(fs.Name(), "--wait and --cancel exclude each other")
	}
	o.bound = drainWaitDefault
	if g.timeoutSet || flagGiven(fs, "timeout") {
		o.bound = g.timeout
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		if o.cancel {
			return cancelDrain(ctx, e, g, c, o)
		}
		// The state before the drain starts: a shard moved off before the first
		// poll still gets its line.
		before, err := describeCluster(ctx, g, c)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := g.call(ctx, func(ctx context.Context) error { _, err := c.DrainNode(ctx, o.num, false); return err }); err != nil {
			return err
		}
		tr := newDrainTracker(o.num, before)
		if !o.wait {
			if o.asJSON {
				return writeJSON(e.stdout, drainStarted{Node: o.num, Draining: true, Replicas: tr.remaining(before)})
			}
			fmt.Fprintf(e.stdout, "node %d: draining, %d replicas to move\n", o.num, tr.remaining(before))
			return nil
		}
		return waitDrained(ctx, e, g, c, o, tr, start)
	})
}

// drainStarted is the --json answer of node drain without --wait, and of --cancel.
type drainStarted struct {
	Node     uint32 `json:"node"`
	Draining bool   `json:"draining"`
	Replicas int    `json:"replicas"`
}

func cancelDrain(ctx context.Context, e *env, g globals, c *client.Client, o drainOpts) error {
	if err := g.call(ctx, func(ctx context.Context) error { _, err := c.DrainNode(ctx, o.num, true); return err }); err != nil {
		return err
	}
	cl, err := describeCluster(ctx, g, c)
	if err != nil {
		return err
	}
	held := newDrainTracker(o.num, cl).remaining(cl)
	if o.asJSON {
		return writeJSON(e.stdout, drainStarted{Node: o.num, Draining: false, Replicas: held})
	}
	fmt.Fprintf(e.stdout, "node %d: drain cancelled; it holds %d replicas and receives replicas again\n", o.num, held)
	return nil
}

func cmdNodeRemove(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("node remove", &g)
	asJSON := fs.Bool("json", false, "print a JSON object")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	num, err := parseNodeNum(fs.Name(), pos[0])
	if err != nil {
		return err
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		if err := g.call(ctx, func(ctx context.Context) error { _, err := c.RemoveNode(ctx, num); return err }); err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, struct {
				Node    uint32 `json:"node"`
				Removed bool   `json:"removed"`
			}{num, true})
		}
		fmt.Fprintf(e.stdout, "node %d removed; its number is never used again\n", num)
		return nil
	})
}

// movedShard is one shard whose replica left the draining node.
type movedShard struct {
	Topic       string `json:"topic"`
	ShardIndex  uint32 `json:"shard_index"`
	ShardID     uint64 `json:"shard_id"`
	FromReplica uint64 `json:"from_replica"`
	FromNode    uint32 `json:"from_node"`
	ToReplica   uint64 `json:"to_replica"` // 0 when no new replica showed (the move was seen done only)
	ToNode      uint32 `json:"to_node"`
}

// drainShard is a shard that held a replica on the draining node when it started.
type drainShard struct {
	topic string
	index uint32
	from  *shardlogv1.ReplicaInfo
	had   map[uint64]bool // replica IDs then
}

// drainTracker follows a drain from DescribeCluster answers: which of the shards
// on the node have moved, and how many replicas it still holds.
type drainTracker struct {
	num     uint32
	pending map[uint64]*drainShard // by shard ID
	moved   []movedShard
	left    int // replicas on the node in the last answer
}

func newDrainTracker(num uint32, cl *shardlogv1.DescribeClusterResponse) *drainTracker {
	t := &drainTracker{num: num, pending: map[uint64]*drainShard{}}
	for _, tp := range cl.GetTopics() {
		for _, sh := range tp.GetShards() {
			ds := &drainShard{topic: tp.GetSpec().GetName(), index: sh.GetIndex(), had: map[uint64]bool{}}
			for _, r := range sh.GetReplicas() {
				ds.had[r.GetReplicaId()] = true
				if r.GetNodeNum() == num {
					ds.from = r
				}
			}
			if ds.from != nil {
				t.pending[sh.GetShardId()] = ds
			}
		}
	}
	t.left = t.remaining(cl)
	return t
}

// remaining counts the replicas on the node in cl.
func (t *drainTracker) remaining(cl *shardlogv1.DescribeClusterResponse) int {
	n := 0
	for _, tp := range cl.GetTopics() {
		for _, sh := range tp.GetShards() {
			for _, r := range sh.GetReplicas() {
				if r.GetNodeNum() == t.num {
					n++
				}
			}
		}
	}
	return n
}

// update notes the shards that left the node since the last answer and returns
// one progress line for each, in shard ID order.
func (t *drainTracker) update(cl *shardlogv1.DescribeClusterResponse) []string {
	shards := map[uint64]*shardlogv1.ShardInfo{}
	for _, tp := range cl.GetTopics() {
		for _, sh := range tp.GetShards() {
			shards[sh.GetShardId()] = sh
		}
	}
	var lines []string
	for _, id := range slices.Sorted(maps.Keys(t.pending)) {
		ds := t.pending[id]
		sh, ok := shards[id]
		if !ok {
			delete(t.pending, id)
			lines = append(lines, fmt.Sprintf("shard %s/%d (id %d) no longer exists (topic deleted)", ds.topic, ds.index, id))
			continue
		}
		m := movedShard{Topic: ds.topic, ShardIndex: ds.index, ShardID: id, FromReplica: ds.from.GetReplicaId(), FromNode: t.num}
		still := false
		for _, r := range sh.GetReplicas() {
			still = still || r.GetNodeNum() == t.num
			if !ds.had[r.GetReplicaId()] && m.ToReplica == 0 {
				m.ToReplica, m.ToNode = r.GetReplicaId(), r.GetNodeNum()
			}
		}
		if still {
			continue
		}
		delete(t.pending, id)
		t.moved = append(t.moved, m)
		to := "(gone)"
		if m.ToReplica != 0 {
			to = replicaString(m.ToReplica, m.ToNode)
		}
		lines = append(lines, fmt.Sprintf("moved shard %s/%d (id %d): %s -> %s", m.Topic, m.ShardIndex, id,
			replicaString(m.FromReplica, m.FromNode), to))
	}
	t.left = t.remaining(cl)
	return lines
}

// drainResult is node drain --wait's --json answer.
type drainResult struct {
	Node      uint32       `json:"node"`
	Drained   bool         `json:"drained"`
	Moved     []movedShard `json:"moved"`
	Seconds   float64      `json:"seconds"`
	Remaining int          `json:"remaining"`
}

// waitDrained polls DescribeCluster until the node holds no replica and leads
// nothing, the drain is cancelled, o.bound passes or ctx ends. A failed poll is
// retried (the meta group may be changing leader); its error is reported if the
// bound passes first.
func waitDrained(ctx context.Context, e *env, g globals, c *client.Client, o drainOpts, tr *drainTracker, start time.Time) error {
	wctx, cancel := context.WithTimeout(ctx, o.bound)
	defer cancel()
	var lastErr error
	for {
		cl, err := describeCluster(wctx, g, c)
		if err == nil {
			lastErr = nil
			for _, l := range tr.update(cl) {
				if !o.asJSON {
					fmt.Fprintln(e.stdout, l)
				}
			}
			if done, err := drainDone(o.num, tr, cl); done || err != nil {
				return tr.finish(e, o, start, err)
			}
		} else {
			lastErr = err
		}
		select {
		case <-wctx.Done():
		case <-time.After(drainPoll):
			continue
		}
		if i := interruption(ctx); i != nil {
			err := &interruptError{by: i, detail: fmt.Sprintf("node %d: %d replicas left; the drain goes on (stop it: shardlog node drain %d --cancel)",
				o.num, tr.left, o.num)}
			return tr.finish(e, o, start, err)
		}
		if ctx.Err() != nil {
			return tr.finish(e, o, start, ctx.Err())
		}
		err = fmt.Errorf("node %d not drained within %s (--timeout): %d replicas left on it; the drain goes on", o.num, o.bound, tr.left)
		if lastErr != nil {
			err = fmt.Errorf("%w; last poll: %w", err, lastErr)
		}
		return tr.finish(e, o, start, err)
	}
}

// drainDone reports whether the node is empty: no replica, no move off it in
// progress, not the meta leader. It fails when the drain was cancelled or the
// node left the table.
func drainDone(num uint32, tr *drainTracker, cl *shardlogv1.DescribeClusterResponse) (bool, error) {
	var nd *shardlogv1.NodeInfo
	for _, n := range cl.GetNodes() {
		if n.GetNum() == num {
			nd = n
		}
	}
	switch {
	case nd == nil:
		return false, fmt.Errorf("node %d left the node table during the drain (removed?) with %d replicas left", num, tr.left)
	case !nd.GetDraining():
		return false, fmt.Errorf("the drain of node %d was cancelled with %d replicas left on it", num, tr.left)
	case tr.left > 0 || cl.GetMetaLeaderNum() == num:
		return false, nil
	}
	for _, m := range cl.GetMoves() {
		if m.GetFromNode() == num {
			return false, nil
		}
	}
	return true, nil
}

// finish prints the end of a drain --wait (the summary, or the --json object) and
// returns err.
func (t *drainTracker) finish(e *env, o drainOpts, start time.Time, err error) error {
	secs := time.Since(start).Seconds()
	if o.asJSON {
		moved := t.moved
		if moved == nil {
			moved = []movedShard{}
		}
		if jerr := writeJSON(e.stdout, drainResult{Node: o.num, Drained: err == nil, Moved: moved,
			Seconds: float64(int(secs*10)) / 10, Remaining: t.left}); jerr != nil && err == nil {
			return jerr
		}
		return err
	}
	if err == nil {
		fmt.Fprintf(e.stdout, "node %d drained: %d replicas moved in %.1f s; it holds no replica and leads nothing; remove it with: shardlog node remove %d\n",
			o.num, len(t.moved), secs, o.num)
	}
	return err
}
