package main

import (
	"context"
	"fmt"
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
		s := info.GetSpec()
		fmt.Fprintf(e.stdout, "topic %s: %d shards, replication factor %d, compression %s, retention %s\n",
			s.GetName(), len(info.GetShards()), s.GetReplicationFactor(), s.GetCompression(), retentionString(s))
		tw := table(e.stdout)
		fmt.Fprintln(tw, "SHARD\tSHARD_ID\tLEADER\tREPLICAS\tFIRST\tNEXT\tSTATUS")
		for _, sh := range info.GetShards() {
			st := sh.GetStatusError()
			if st == "" {
				st = "ok"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%s\n", sh.GetIndex(), sh.GetShardId(), nodeString(sh.GetLeaderNodeId()),
				replicasString(sh.GetReplicas()), sh.GetFirstOffset(), sh.GetNextOffset(), st)
		}
		return tw.Flush()
	})
}

// nodeString renders a node ID, with "-" for none.
func nodeString(id uint64) string {
	if id == 0 {
		return "-"
	}
	return fmt.Sprint(id)
}

// replicasString renders replicas as r<replica>@<node>, the leader marked with '*'.
func replicasString(rs []*shardlogv1.ReplicaInfo) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		p := fmt.Sprintf("r%d@%d", r.GetReplicaId(), r.GetNodeId())
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

func cmdDump(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("dump", &g)
	asJSON := fs.Bool("json", false, "print the DescribeCluster answer as JSON")
	if _, err := parse(e, fs, args, 0); err != nil {
		return err
	}
	return withClient(ctx, e, g, func(c *client.Client) error {
		var cl *shardlogv1.DescribeClusterResponse
		err := g.call(ctx, func(ctx context.Context) (err error) {
			cl, err = c.DescribeCluster(ctx)
			return err
		})
		if err != nil {
			return err
		}
		if *asJSON {
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
	fmt.Fprintf(e.stdout, "cluster: answered by node %d, meta leader %s, meta index %d\n\nNODES\n",
		cl.GetThisNodeId(), nodeString(cl.GetMetaLeaderNodeId()), cl.GetMetaIndex())
	tw := table(e.stdout)
	fmt.Fprintln(tw, "NODE\tSTATE\tZONE\tCLIENT\tRAFT\tGOSSIP\tMETA_VOTER\tREPLICAS\tLEADERS\tDISK")
	for _, n := range cl.GetNodes() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%t\t%d\t%d\t%s\n", n.GetNodeId(), n.GetState(), orDash(n.GetZone()),
			n.GetClientAddr(), n.GetRaftAddr(), n.GetGossipAddr(), n.GetMetaVoter(), n.GetReplicas(), n.GetLeaders(), diskString(n))
	}
	_ = tw.Flush()
	fmt.Fprintln(e.stdout, "\nTOPICS")
	writeTopics(e, cl.GetTopics())
	fmt.Fprintln(e.stdout, "\nPLACEMENT")
	tw = table(e.stdout)
	fmt.Fprintln(tw, "TOPIC\tSHARD\tSHARD_ID\tLEADER\tREPLICAS")
	for _, t := range cl.GetTopics() {
		for _, sh := range t.GetShards() {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", t.GetSpec().GetName(), sh.GetIndex(), sh.GetShardId(),
				nodeString(sh.GetLeaderNodeId()), replicasString(sh.GetReplicas()))
		}
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
