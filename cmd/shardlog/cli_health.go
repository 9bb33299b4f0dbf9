package main

import (
	"context"
	"fmt"
	"strings"

	"shardlog/proto/shardlogv1"
)

// exitUnhealthy is cluster health's exit status when it found a problem (errors
// stay 1, usage 2).
const exitUnhealthy = 3

// healthReport is what cluster health found, and its --json answer.
type healthReport struct {
	Healthy         bool          `json:"healthy"`
	Verdict         string        `json:"verdict"`
	Nodes           int           `json:"nodes"`
	Shards          int           `json:"shards"`
	UnderReplicated []healthShard `json:"under_replicated"`
	Leaderless      []healthShard `json:"leaderless"`
	Moves           []*moveJSON   `json:"moves"`
	MetaVotersDown  []healthNode  `json:"meta_voters_not_alive"`
	DownHolding     []healthNode  `json:"down_nodes_holding_replicas"`
	DiskFull        []healthNode  `json:"disk_full"`
	// Notes are facts that do not make the cluster unhealthy (a DEAD node that
	// holds nothing, a drain in progress).
	Notes []string `json:"notes"`
}

type healthShard struct {
	Topic      string          `json:"topic"`
	ShardIndex uint32          `json:"shard_index"`
	ShardID    uint64          `json:"shard_id"`
	Replicas   []healthReplica `json:"replicas"`
}

type healthReplica struct {
	Replica uint64 `json:"replica"`
	Node    uint32 `json:"node"`
	State   string `json:"state"` // of its node, as the answering node sees it
}

type healthNode struct {
	Node     uint32 `json:"node"`
	State    string `json:"state"`
	Replicas uint32 `json:"replicas"`
	Disk     string `json:"disk"`
}

func cmdClusterHealth(ctx context.Context, e *env, g globals, args []string) error {
	return clusterCommand(ctx, e, g, args, "cluster health", "print the report as one JSON object", func(cl *shardlogv1.DescribeClusterResponse, asJSON bool) (err error) {
		r := checkHealth(cl)
		if asJSON {
			err = writeJSON(e.stdout, r)
		} else {
			writeHealth(e, r)
		}
		if err == nil && !r.Healthy {
			err = exitStatus(exitUnhealthy)
		}
		return err
	})
}

// checkHealth judges a DescribeCluster answer. Moves in progress count as
// unhealthy: until they end, the cluster is not in the shape it is heading for.
func checkHealth(cl *shardlogv1.DescribeClusterResponse) healthReport {
	r := healthReport{Nodes: len(cl.GetNodes()), UnderReplicated: []healthShard{}, Leaderless: []healthShard{},
		Moves: []*moveJSON{}, MetaVotersDown: []healthNode{}, DownHolding: []healthNode{}, DiskFull: []healthNode{}, Notes: []string{}}
	state := map[uint32]string{}
	for _, n := range cl.GetNodes() {
		state[n.GetNum()] = n.GetState()
	}
	for _, t := range cl.GetTopics() {
		for _, sh := range t.GetShards() {
			r.Shards++
			hs := healthShard{Topic: t.GetSpec().GetName(), ShardIndex: sh.GetIndex(), ShardID: sh.GetShardId()}
			for _, rep := range sh.GetReplicas() {
				hs.Replicas = append(hs.Replicas, healthReplica{Replica: rep.GetReplicaId(), Node: rep.GetNodeNum(), State: state[rep.GetNodeNum()]})
			}
			if sh.GetUnderReplicated() {
				r.UnderReplicated = append(r.UnderReplicated, hs)
			}
			if sh.GetLeaderNodeId() == 0 {
				r.Leaderless = append(r.Leaderless, hs)
			}
		}
	}
	for _, m := range cl.GetMoves() {
		r.Moves = append(r.Moves, moveJSONOf(m))
	}
	for _, n := range cl.GetNodes() {
		checkNode(&r, n)
	}
	r.Healthy = len(r.UnderReplicated)+len(r.Leaderless)+len(r.Moves)+len(r.MetaVotersDown)+len(r.DownHolding)+len(r.DiskFull) == 0
	r.Verdict = verdict(r)
	return r
}

// checkNode adds what one node contributes to the report.
func checkNode(r *healthReport, n *shardlogv1.NodeInfo) {
	hn := healthNode{Node: n.GetNum(), State: n.GetState(), Replicas: n.GetReplicas(), Disk: diskString(n)}
	alive := n.GetState() == "ALIVE"
	if n.GetMetaVoter() && !alive {
		r.MetaVotersDown = append(r.MetaVotersDown, hn)
	}
	switch {
	case !alive && n.GetReplicas() > 0:
		r.DownHolding = append(r.DownHolding, hn)
	case !alive && (n.GetState() == "DEAD" || n.GetState() == "LEFT"):
		r.Notes = append(r.Notes, fmt.Sprintf("node %d is %s and holds nothing: remove it with shardlog node remove %d", hn.Node, hn.State, hn.Node))
	case !alive:
		r.Notes = append(r.Notes, fmt.Sprintf("node %d is %s and holds nothing", hn.Node, hn.State))
	}
	if n.GetDraining() {
		r.Notes = append(r.Notes, fmt.Sprintf("node %d is draining: %d replicas left on it", hn.Node, hn.Replicas))
	}
	if n.GetDiskFull() {
		r.DiskFull = append(r.DiskFull, hn)
	}
}

func verdict(r healthReport) string {
	if r.Healthy {
		return fmt.Sprintf("healthy: %s, %s, all fully replicated and led", plural(r.Nodes, "node", "nodes"), plural(r.Shards, "shard", "shards"))
	}
	var parts []string
	add := func(n int, one, many string) {
		if n > 0 {
			parts = append(parts, plural(n, one, many))
		}
	}
	add(len(r.UnderReplicated), "under-replicated", "under-replicated")
	add(len(r.Leaderless), "leaderless", "leaderless")
	add(len(r.Moves), "move in progress", "moves in progress")
	add(len(r.MetaVotersDown), "meta voter not ALIVE", "meta voters not ALIVE")
	add(len(r.DownHolding), "node not ALIVE holding replicas", "nodes not ALIVE holding replicas")
	add(len(r.DiskFull), "node DISK_FULL", "nodes DISK_FULL")
	return "unhealthy: " + strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// writeHealth prints the verdict, then one section per kind of problem found,
// then the notes.
func writeHealth(e *env, r healthReport) {
	w := e.stdout
	fmt.Fprintln(w, r.Verdict)
	shards := func(title string, list []healthShard) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		for _, s := range list {
			reps := make([]string, 0, len(s.Replicas))
			for _, rep := range s.Replicas {
				p := replicaString(rep.Replica, rep.Node)
				if rep.State != "ALIVE" {
					p += "(" + orDash(rep.State) + ")"
				}
				reps = append(reps, p)
			}
			fmt.Fprintf(w, "  %s/%d (id %d): %s\n", s.Topic, s.ShardIndex, s.ShardID, orDash(strings.Join(reps, ",")))
		}
	}
	nodes := func(title string, list []healthNode, detail func(healthNode) string) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		for _, n := range list {
			fmt.Fprintf(w, "  node %d (%s)%s\n", n.Node, n.State, detail(n))
		}
	}
	shards("under-replicated shards:", r.UnderReplicated)
	shards("leaderless shards:", r.Leaderless)
	if len(r.Moves) > 0 {
		fmt.Fprintln(w, "moves in progress:")
		for _, m := range r.Moves {
			fmt.Fprintf(w, "  %s/%d (id %d): %s->%s %s (%s)\n", m.Topic, m.ShardIndex, m.ShardID,
				replicaString(m.FromReplica, m.FromNode), replicaString(m.ToReplica, m.ToNode), m.Phase, m.Reason)
		}
	}
	none := func(healthNode) string { return "" }
	nodes("meta voters not ALIVE:", r.MetaVotersDown, none)
	nodes("nodes not ALIVE holding replicas:", r.DownHolding, func(n healthNode) string { return fmt.Sprintf(": %d replicas", n.Replicas) })
	nodes("DISK_FULL nodes (writes to their shards are refused):", r.DiskFull, func(n healthNode) string { return ": " + n.Disk })
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
}
