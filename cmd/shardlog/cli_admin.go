package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"shardlog/batch"
	"shardlog/client"
	"shardlog/proto/shardlogv1"
)

func cmdCreateTopic(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("create-topic", &g)
	shards := fs.Uint("shards", 1, "number of shards")
	rf := fs.Uint("replication-factor", 1, "replicas per shard (1..7)")
	retention := fs.Duration("retention", 0, "drop batches older than this (0 keeps them)")
	retentionBytes := fs.Int64("retention-bytes", 0, "cap on each shard's size in bytes (0 = no cap)")
	compression := fs.String("compression", "s2", "batch codec producers use: none, s2 or zstd")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	if _, err := batch.ParseCodec(*compression); err != nil {
		return usagef(fs.Name(), "%v", err)
	}
	if *retention < 0 || *retentionBytes < 0 {
		return usagef(fs.Name(), "retention must not be negative")
	}
	spec := &shardlogv1.TopicSpec{
		Name: pos[0], Shards: uint32(*shards), ReplicationFactor: uint32(*rf),
		RetentionMs: retention.Milliseconds(), RetentionBytes: *retentionBytes, Compression: *compression,
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		var info *shardlogv1.TopicInfo
		err := g.call(ctx, func(ctx context.Context) (err error) {
			info, err = c.CreateTopic(ctx, spec)
			return err
		})
		if err != nil {
			return err
		}
		s := info.GetSpec()
		fmt.Fprintf(e.stdout, "created topic %s: %d shards, replication factor %d, compression %s, retention %s\n",
			s.GetName(), len(info.GetShards()), s.GetReplicationFactor(), s.GetCompression(), retentionString(s))
		return nil
	})
}

func cmdDeleteTopic(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("delete-topic", &g)
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		if err := g.call(ctx, func(ctx context.Context) error { return c.DeleteTopic(ctx, pos[0]) }); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted topic %s\n", pos[0])
		return nil
	})
}

func cmdTopics(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("topics", &g)
	if _, err := parse(e, fs, args, 0); err != nil {
		return err
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		var topics []*shardlogv1.TopicInfo
		err := g.call(ctx, func(ctx context.Context) (err error) {
			topics, err = c.ListTopics(ctx)
			return err
		})
		if err != nil {
			return err
		}
		writeTopics(e, topics)
		return nil
	})
}

func writeTopics(e *env, topics []*shardlogv1.TopicInfo) {
	tw := table(e.stdout)
	fmt.Fprintln(tw, "NAME\tSHARDS\tRF\tCOMPRESSION\tRETENTION")
	for _, t := range topics {
		s := t.GetSpec()
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.GetName(), len(t.GetShards()), s.GetReplicationFactor(),
			s.GetCompression(), retentionString(s))
	}
	_ = tw.Flush()
}

// retentionString renders a topic's time and size retention.
func retentionString(s *shardlogv1.TopicSpec) string {
	var parts []string
	if ms := s.GetRetentionMs(); ms > 0 {
		parts = append(parts, (time.Duration(ms) * time.Millisecond).String())
	}
	if b := s.GetRetentionBytes(); b > 0 {
		parts = append(parts, fmt.Sprintf("%dB/shard", b))
	}
	if len(parts) == 0 {
		return "forever"
	}
	return strings.Join(parts, ",")
}

func cmdDescribeTopic(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("describe-topic", &g)
	asJSON := fs.Bool("json", false, "print a JSON object (nodes by number)")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		var info *shardlogv1.TopicInfo
		err := g.call(ctx, func(ctx context.Context) (err error) {
			info, err = c.DescribeTopic(ctx, pos[0], true)
			return err
		})
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, topicJSONOf(info))
		}
		s := info.GetSpec()
		fmt.Fprintf(e.stdout, "topic %s: %d shards, replication factor %d, compression %s, retention %s\n",
			s.GetName(), len(info.GetShards()), s.GetReplicationFactor(), s.GetCompression(), retentionString(s))
		tw := table(e.stdout)
		fmt.Fprintln(tw, "SHARD\tSHARD_ID\tLEADER\tREPLICAS\tFIRST\tNEXT\tSTATUS")
		for _, sh := range info.GetShards() {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%s\n", sh.GetIndex(), sh.GetShardId(), leaderString(sh),
				replicasString(sh.GetReplicas()), sh.GetFirstOffset(), sh.GetNextOffset(), shardStatus(sh))
		}
		return tw.Flush()
	})
}

// numString renders a node number; "?" when the server sent none (0).
func numString(num uint32) string {
	if num == 0 {
		return "?"
	}
	return fmt.Sprint(num)
}

// replicaString renders a replica as r<replica>@<node number>.
func replicaString(replica uint64, num uint32) string {
	return fmt.Sprintf("r%d@%s", replica, numString(num))
}

// replicasString renders replicas as r<replica>@<node number>, the leader marked with '*'.
func replicasString(rs []*shardlogv1.ReplicaInfo) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		p := replicaString(r.GetReplicaId(), r.GetNodeNum())
		if r.GetLeader() {
			p += "*"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// leaderNum is the number of the node leading the shard, 0 for none or unknown.
func leaderNum(sh *shardlogv1.ShardInfo) uint32 {
	for _, r := range sh.GetReplicas() {
		if sh.GetLeaderNodeId() != 0 && r.GetNodeId() == sh.GetLeaderNodeId() {
			return r.GetNodeNum()
		}
	}
	return 0
}

// leaderString is a shard's LEADER column: the leader's node number, "-" for none.
func leaderString(sh *shardlogv1.ShardInfo) string {
	if sh.GetLeaderNodeId() == 0 {
		return "-"
	}
	return numString(leaderNum(sh))
}

func metaLeaderString(cl *shardlogv1.DescribeClusterResponse) string {
	if cl.GetMetaLeaderNodeId() == 0 {
		return "-"
	}
	return numString(cl.GetMetaLeaderNum())
}

// moveString renders a move in progress: "r7@3->r40@5 catching_up".
func moveString(m *shardlogv1.MoveInfo) string {
	return fmt.Sprintf("%s->%s %s", replicaString(m.GetFromReplicaId(), m.GetFromNode()),
		replicaString(m.GetToReplicaId(), m.GetToNode()), m.GetPhase())
}

// shardStatus is a shard's STATUS column: why its offsets could not be read,
// under-replicated, the move in progress; "ok" when none applies.
func shardStatus(sh *shardlogv1.ShardInfo) string {
	var parts []string
	if st := sh.GetStatusError(); st != "" {
		parts = append(parts, st)
	}
	if sh.GetUnderReplicated() {
		parts = append(parts, "under-replicated")
	}
	if m := sh.GetMove(); m != nil {
		parts = append(parts, "moving "+moveString(m))
	}
	if len(parts) == 0 {
		return "ok"
	}
	return strings.Join(parts, "; ")
}

// nodesByNum returns cl's nodes in number order (the server sends them in node ID
// order, which means nothing to a reader).
func nodesByNum(cl *shardlogv1.DescribeClusterResponse) []*shardlogv1.NodeInfo {
	return slices.SortedStableFunc(slices.Values(cl.GetNodes()), func(a, b *shardlogv1.NodeInfo) int {
		return cmp.Compare(a.GetNum(), b.GetNum())
	})
}

// stateString is a node's STATE column: its gossip state, with DRAINING appended.
func stateString(state string, draining bool) string {
	if draining {
		return state + ",DRAINING"
	}
	return state
}

func metaString(voter, leader bool) string {
	switch {
	case leader:
		return "leader"
	case voter:
		return "voter"
	}
	return "-"
}

func describeCluster(ctx context.Context, g globals, c *client.Client) (cl *shardlogv1.DescribeClusterResponse, err error) {
	err = g.call(ctx, func(ctx context.Context) (err error) {
		cl, err = c.DescribeCluster(ctx)
		return err
	})
	return cl, err
}

// clusterCommand runs a read command that takes no arguments and a --json flag
// (usage jsonUsage) on one DescribeCluster answer.
func clusterCommand(ctx context.Context, e *env, g globals, args []string, name, jsonUsage string,
	show func(cl *shardlogv1.DescribeClusterResponse, asJSON bool) error) error {
	fs := newFlags(name, &g)
	asJSON := fs.Bool("json", false, jsonUsage)
	if _, err := parse(e, fs, args, 0); err != nil {
		return err
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		cl, err := describeCluster(ctx, g, c)
		if err != nil {
			return err
		}
		return show(cl, *asJSON)
	})
}

// writeJSON prints v indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func cmdDump(ctx context.Context, e *env, g globals, args []string) error {
	return clusterCommand(ctx, e, g, args, "dump", "print the DescribeCluster answer as JSON", func(cl *shardlogv1.DescribeClusterResponse, asJSON bool) error {
		if asJSON {
			b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(cl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", b)
			return err
		}
		writeDump(e, cl)
		return nil
	})
}

func writeDump(e *env, cl *shardlogv1.DescribeClusterResponse) {
	fmt.Fprintf(e.stdout, "cluster: answered by node %s, meta leader %s, meta index %d\n\nNODES\n",
		numString(cl.GetThisNodeNum()), metaLeaderString(cl), cl.GetMetaIndex())
	tw := table(e.stdout)
	fmt.Fprintln(tw, "NODE\tSTATE\tZONE\tCLIENT\tRAFT\tGOSSIP\tMETA\tREPLICAS\tLEADERS\tDISK")
	for _, n := range nodesByNum(cl) {
		leader := n.GetNum() != 0 && n.GetNum() == cl.GetMetaLeaderNum()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", numString(n.GetNum()), stateString(n.GetState(), n.GetDraining()),
			orDash(n.GetZone()), n.GetClientAddr(), n.GetRaftAddr(), n.GetGossipAddr(), metaString(n.GetMetaVoter(), leader),
			n.GetReplicas(), n.GetLeaders(), diskString(n))
	}
	_ = tw.Flush()
	fmt.Fprintln(e.stdout, "\nTOPICS")
	writeTopics(e, cl.GetTopics())
	fmt.Fprintln(e.stdout, "\nPLACEMENT")
	tw = table(e.stdout)
	fmt.Fprintln(tw, "TOPIC\tSHARD\tSHARD_ID\tLEADER\tREPLICAS\tSTATUS")
	for _, t := range cl.GetTopics() {
		for _, sh := range t.GetShards() {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", t.GetSpec().GetName(), sh.GetIndex(), sh.GetShardId(),
				leaderString(sh), replicasString(sh.GetReplicas()), shardStatus(sh))
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(e.stdout, "\nMOVES")
	if len(cl.GetMoves()) == 0 {
		fmt.Fprintln(e.stdout, "none in progress")
		return
	}
	tw = table(e.stdout)
	fmt.Fprintln(tw, "TOPIC\tSHARD\tSHARD_ID\tFROM\tTO\tPHASE\tREASON")
	for _, m := range cl.GetMoves() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", m.GetTopic(), m.GetShardIndex(), m.GetShardId(),
			replicaString(m.GetFromReplicaId(), m.GetFromNode()), replicaString(m.GetToReplicaId(), m.GetToNode()),
			m.GetPhase(), m.GetReason())
	}
	_ = tw.Flush()
}

// diskString is a node's DISK column: DISK_FULL with the free space and the limit
// (writes to its shards are refused), else ok, with the free space when known (the
// answering node's own).
func diskString(n *shardlogv1.NodeInfo) string {
	free, limit := n.GetDiskFreeBytes(), n.GetMinFreeDiskBytes()
	switch {
	case n.GetDiskFull():
		return fmt.Sprintf("DISK_FULL(%s free < %s)", byteSize(free), byteSize(limit))
	case free > 0:
		return fmt.Sprintf("ok(%s free)", byteSize(free))
	}
	return "ok"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// withClient dials the server, runs f and closes the client.
func withClient(ctx context.Context, e *env, g globals, f func(*client.Client) error) error {
	c, err := g.dial(ctx, e)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// topicJSON is describe-topic's --json answer. Its shape is ours (not the proto's):
// nodes go by their readable number.
type topicJSON struct {
	Name              string      `json:"name"`
	Shards            int         `json:"shards"`
	ReplicationFactor uint32      `json:"replication_factor"`
	Compression       string      `json:"compression"`
	RetentionMs       int64       `json:"retention_ms"`
	RetentionBytes    int64       `json:"retention_bytes"`
	ShardList         []shardJSON `json:"shard_list"`
}

type shardJSON struct {
	Index           uint32        `json:"index"`
	ShardID         uint64        `json:"shard_id"`
	Leader          uint32        `json:"leader"` // node number; 0 for none
	Replicas        []replicaJSON `json:"replicas"`
	FirstOffset     uint64        `json:"first_offset"`
	NextOffset      uint64        `json:"next_offset"`
	StatusError     string        `json:"status_error"`
	UnderReplicated bool          `json:"under_replicated"`
	Move            *moveJSON     `json:"move"` // null when none is in progress
}

type replicaJSON struct {
	Replica uint64 `json:"replica"`
	Node    uint32 `json:"node"`
	Leader  bool   `json:"leader"`
}

type moveJSON struct {
	Topic       string `json:"topic"`
	ShardIndex  uint32 `json:"shard_index"`
	ShardID     uint64 `json:"shard_id"`
	FromReplica uint64 `json:"from_replica"`
	FromNode    uint32 `json:"from_node"`
	ToReplica   uint64 `json:"to_replica"`
	ToNode      uint32 `json:"to_node"`
	Phase       string `json:"phase"`
	Reason      string `json:"reason"`
}

func moveJSONOf(m *shardlogv1.MoveInfo) *moveJSON {
	if m == nil {
		return nil
	}
	return &moveJSON{Topic: m.GetTopic(), ShardIndex: m.GetShardIndex(), ShardID: m.GetShardId(),
		FromReplica: m.GetFromReplicaId(), FromNode: m.GetFromNode(), ToReplica: m.GetToReplicaId(), ToNode: m.GetToNode(),
		Phase: m.GetPhase(), Reason: m.GetReason()}
}

func topicJSONOf(info *shardlogv1.TopicInfo) topicJSON {
	s := info.GetSpec()
	t := topicJSON{Name: s.GetName(), Shards: len(info.GetShards()), ReplicationFactor: s.GetReplicationFactor(),
		Compression: s.GetCompression(), RetentionMs: s.GetRetentionMs(), RetentionBytes: s.GetRetentionBytes(), ShardList: []shardJSON{}}
	for _, sh := range info.GetShards() {
		sj := shardJSON{Index: sh.GetIndex(), ShardID: sh.GetShardId(), Leader: leaderNum(sh), Replicas: []replicaJSON{},
			FirstOffset: sh.GetFirstOffset(), NextOffset: sh.GetNextOffset(), StatusError: sh.GetStatusError(),
			UnderReplicated: sh.GetUnderReplicated(), Move: moveJSONOf(sh.GetMove())}
		for _, r := range sh.GetReplicas() {
			sj.Replicas = append(sj.Replicas, replicaJSON{Replica: r.GetReplicaId(), Node: r.GetNodeNum(), Leader: r.GetLeader()})
		}
		t.ShardList = append(t.ShardList, sj)
	}
	return t
}
