package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	"shardlog/proto/shardlogv1"
)

// The faults that take a node away for good (kill-forever, drain) and the check that
// the cluster healed from them: every shard back at its replication factor on live
// nodes.

// KillForeverResult is what the kill-forever fault did.
type KillForeverResult struct {
	// Node is the node killed, Num its readable number (0: unknown).
	Node string `json:"node"`
	Num  uint32 `json:"num,omitempty"`
	// AtMs is when it was killed (ms since the run started).
	AtMs int64 `json:"at_ms"`
	// FullReplicationMs is the time from the kill until every shard of every run topic
	// was first seen fully replicated on live nodes (ReplicationProblems empty); -1:
	// not seen before the final check gave up.
	FullReplicationMs int64 `json:"full_replication_ms"`
}

// DrainResult is what the drain fault did.
type DrainResult struct {
	Node string `json:"node"`
	Num  uint32 `json:"num"`
	// StartMs is when DrainNode was asked (ms since the run started); DurationMs how
	// long until the node held no replica and no move from it was in progress.
	StartMs    int64 `json:"start_ms"`
	DurationMs int64 `json:"duration_ms"`
	// Moved is how many replicas the node held when the drain started.
	Moved int `json:"moved"`
	// Removed: RemoveNode succeeded and the node's process was stopped for good.
	Removed bool `json:"removed"`
	// Err says why the drain failed (empty: it did not).
	Err string `json:"err,omitempty"`
	// Skipped says why the drain was not started (too few nodes running when its
	// turn came); not a violation.
	Skipped string `json:"skipped,omitempty"`
}

// ReplicationResult is the final replication check: after the faults ended, every
// shard of every run topic must have exactly the replication factor of replicas, all
// on live nodes, no move in progress and a leader, within BoundMs.
type ReplicationResult struct {
	BoundMs int64 `json:"bound_ms"`
	// FullAfterMs is the time after the faults ended until the check passed (-1: it
	// did not within the bound).
	FullAfterMs int64 `json:"full_after_ms"`
	// Problems is what was still wrong when the bound ran out, one line per shard.
	Problems []string `json:"problems,omitempty"`
}

// takesNodes reports whether faults include one that takes a node away for good.
func takesNodes(faults []string) bool {
	return slices.ContainsFunc(faults, oneShot)
}

// ReplicationProblems returns, one line per shard, why the shards of the named topics
// in a DescribeCluster answer are not fully replicated: not exactly rf replicas, a
// replica on a node that is not ALIVE or that gone names (by readable number: why it
// is gone), a move in progress, or no leader. A missing topic is a problem too.
func ReplicationProblems(resp *shardlogv1.DescribeClusterResponse, topics []string, rf int, gone map[uint32]string) []string {
	state := map[uint32]string{}
	for _, n := range resp.GetNodes() {
		state[n.GetNum()] = n.GetState()
	}
	var out []string
	for _, name := range topics {
		i := slices.IndexFunc(resp.GetTopics(), func(t *shardlogv1.TopicInfo) bool { return t.GetSpec().GetName() == name })
		if i < 0 {
			out = append(out, fmt.Sprintf("topic %s: not described", name))
			continue
		}
		for _, s := range resp.GetTopics()[i].GetShards() {
			if why := shardProblem(s, rf, state, gone); why != "" {
				out = append(out, fmt.Sprintf("topic %s shard %d: %s", name, s.GetIndex(), why))
			}
		}
	}
	for _, m := range resp.GetMoves() {
		prefix := fmt.Sprintf("topic %s shard %d: ", m.GetTopic(), m.GetShardIndex())
		if slices.Contains(topics, m.GetTopic()) &&
			!slices.ContainsFunc(out, func(p string) bool { return strings.HasPrefix(p, prefix) }) {
			out = append(out, prefix+moveText(m))
		}
	}
	return out
}

// shardProblem says what is wrong with one shard ("" when nothing).
func shardProblem(s *shardlogv1.ShardInfo, rf int, state map[uint32]string, gone map[uint32]string) string {
	var why []string
	if n := len(s.GetReplicas()); n != rf {
		why = append(why, fmt.Sprintf("%d replicas, want %d", n, rf))
	}
	for _, rep := range s.GetReplicas() {
		num := rep.GetNodeNum()
		switch {
		case gone[num] != "":
			why = append(why, fmt.Sprintf("replica on node %d (%s)", num, gone[num]))
		case state[num] != "ALIVE":
			why = append(why, fmt.Sprintf("replica on node %d (state %q)", num, state[num]))
		}
	}
	if s.GetMove() != nil {
		why = append(why, moveText(s.GetMove()))
	}
	if s.GetLeaderNodeId() == 0 {
		why = append(why, "no leader")
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprint(why)
}

func moveText(m *shardlogv1.MoveInfo) string {
	return fmt.Sprintf("move from node %d to node %d in progress (%s, %s)", m.GetFromNode(), m.GetToNode(), m.GetPhase(), m.GetReason())
}

// replicationNow describes the cluster and returns its replication problems (or why it
// could not be described).
func (r *run) replicationNow(ctx context.Context) []string {
	resp, err := r.describeNewest(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var topics []string
	for _, t := range r.topics {
		topics = append(topics, t.Name)
	}
	r.mu.Lock()
	gone := map[uint32]string{}
	for _, g := range r.gone {
		if g.num != 0 {
			gone[g.num] = g.why
		}
	}
	r.mu.Unlock()
	for _, n := range resp.GetNodes() {
		if i, ok := r.nodeIndex(n.GetClientAddr()); ok && gone[n.GetNum()] == "" && !r.cl.Running(i) {
			gone[n.GetNum()] = "process not running"
		}
	}
	return ReplicationProblems(resp, topics, r.cfg.ReplicationFactor, gone)
}

// confirmFor is how long after a fully replicated view the final check looks again.
const confirmFor = 3 * time.Second

// awaitReplication is the final replication check: it polls until the cluster is fully
// replicated or ReplicationTimeout after faultsEnd has passed.
func (r *run) awaitReplication(ctx context.Context, faultsEnd time.Time) *ReplicationResult {
	res := &ReplicationResult{BoundMs: r.cfg.ReplicationTimeout.Milliseconds(), FullAfterMs: -1}
	ctx, cancel := context.WithDeadline(ctx, faultsEnd.Add(r.cfg.ReplicationTimeout))
	defer cancel()
	for {
		problems := r.replicationNow(ctx)
		if len(problems) == 0 {
			// NB: confirmed once more after confirmFor: a server that panics at its
			// start (seed 3) looks ALIVE and running for a moment after heal started it.
			full := time.Since(faultsEnd)
			sleepCtx(ctx, confirmFor)
			if problems = r.replicationNow(ctx); len(problems) == 0 {
				res.FullAfterMs = full.Milliseconds()
				r.log.Info("fully replicated", "after_faults_ended", full.Round(time.Millisecond))
				return res
			}
		}
		if ctx.Err() != nil {
			res.Problems = problems
			r.log.Warn("not fully replicated within the bound", "bound", r.cfg.ReplicationTimeout, "problems", problems)
			return res
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

// watchFullReplication polls, from a kill-forever on, until the cluster is first fully
// replicated (or ctx ends) and records the time in kf.
func (r *run) watchFullReplication(ctx context.Context, kf *KillForeverResult) {
	killed := r.rec.start.Add(time.Duration(kf.AtMs) * time.Millisecond)
	r.bg.Go(func() {
		for ctx.Err() == nil {
			sleepCtx(ctx, 500*time.Millisecond)
			if ctx.Err() == nil && len(r.replicationNow(ctx)) == 0 {
				r.mu.Lock()
				kf.FullReplicationMs = time.Since(killed).Milliseconds()
				r.mu.Unlock()
				r.log.Info("fully replicated after kill-forever", "node", kf.Node, "after", time.Since(killed).Round(time.Millisecond))
				return
			}
		}
	})
}

// checkHealing copies the history's kill-forever, drain and replication results into
// r and counts their violations: each shard the final replication check named, and a
// drain that failed.
func checkHealing(h History, r *Report) {
	r.KillForever, r.Drain, r.Replication = h.KillForever, h.Drain, h.Replication
	if h.Replication != nil && len(h.Replication.Problems) > 0 {
		r.Unreplicated = len(h.Replication.Problems)
		for _, p := range h.Replication.Problems[:min(len(h.Replication.Problems), maxExamples)] {
			r.Examples["unreplicated"] = append(r.Examples["unreplicated"],
				fmt.Sprintf("%s, %d ms after the faults ended", p, h.Replication.BoundMs))
		}
	}
	if h.Drain != nil && h.Drain.Err != "" {
		r.DrainFailed = 1
		r.Examples["drain_failed"] = []string{h.Drain.Err}
	}
}

// describeNewest asks every live node for the cluster description (at most 2 s each)
// and returns the answer of the meta leader, else the one with the highest meta index.
// NB: a node's answer comes from its own meta state, and a node that left the meta
// group (a drained meta voter, seen in seed 2) keeps answering from a state frozen
// when it left; one admin client's answers could be that node's.
func (r *run) describeNewest(ctx context.Context) (*shardlogv1.DescribeClusterResponse, error) {
	var best *shardlogv1.DescribeClusterResponse
	var errs []error
	for _, i := range r.liveNodes() {
		if !r.cl.Running(i) || r.cl.Paused(i) {
			continue
		}
		resp, err := describeAt(ctx, r.cl.Nodes()[i].Addr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", r.cl.Nodes()[i].Name, err))
		case resp.GetMetaLeaderNum() != 0 && resp.GetThisNodeNum() == resp.GetMetaLeaderNum():
			return resp, nil
		case best == nil || resp.GetMetaIndex() > best.GetMetaIndex():
			best = resp
		}
	}
	if best == nil && len(errs) == 0 {
		return nil, errors.New("describe cluster: no live node is running")
	}
	if best == nil {
		return nil, fmt.Errorf("describe cluster: no node answered: %w", errors.Join(errs...))
	}
	return best, nil
}

// describeAt asks the node at addr for the cluster description (at most 2 s).
func describeAt(ctx context.Context, addr string) (resp *shardlogv1.DescribeClusterResponse, err error) {
	err = callNode(ctx, addr, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = shardlogv1.NewAdminClient(cc).DescribeCluster(ctx, &shardlogv1.DescribeClusterRequest{})
		return err
	})
	return resp, err
}
