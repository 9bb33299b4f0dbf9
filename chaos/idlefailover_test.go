package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"shardlog/client"
	"shardlog/localcluster"
	"shardlog/proto/shardlogv1"
)

// TestIdleShardsFailOver is issue 8's acceptance test, run as users run the server:
// three `shardlog server` processes with default flags (quiesce on, as `make run`
// starts them), a topic of 24 shards at RF 3 that is left idle until dragonboat has
// quiesced every shard, then the node leading the most shards is killed (SIGKILL) or
// frozen (SIGSTOP). Every shard must take a write through a survivor within 5 s.
//
// Before idle shards were woken on a peer's failure, quiesced followers never noticed
// that their leader was gone: the shards the dead node led stayed leaderless until it
// came back.
func TestIdleShardsFailOver(t *testing.T) {
	idle := 12 * time.Second // quiesce starts after ElectionRTT*10 ticks = 5 s idle
	if !testing.Short() {
		idle = time.Minute
	}
	bin := chaosBinary(t)
	for _, fault := range []string{FaultKill, FaultPause} {
		t.Run(fault, func(t *testing.T) {
			dir := t.TempDir()
			log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			cl, err := localcluster.New(localcluster.Config{Binary: bin, Nodes: 3, Dir: dir, LogLevel: "warn", Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cl.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			if err := cl.Start(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			const shards = 24
			adm, err := client.Dial(ctx, cl.Addrs(), client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer adm.Close()
			if _, err := adm.CreateTopic(ctx, &shardlogv1.TopicSpec{Name: "idle", Shards: shards, ReplicationFactor: 3}); err != nil {
				t.Fatal(err)
			}
			if _, err := waitLeaders(ctx, adm, "idle", shards, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(idle)
			info, err := waitLeaders(ctx, adm, "idle", shards, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			victim, led := mostLeader(info)
			cs, err := adm.DescribeCluster(ctx)
			if err != nil {
				t.Fatal(err)
			}
			vi := -1
			for _, nd := range cs.GetNodes() {
				if nd.GetNodeId() == victim {
					vi = slices.Index(cl.Addrs(), nd.GetClientAddr())
				}
			}
			if vi < 0 {
				t.Fatalf("leader node %d not among the cluster's processes", victim)
			}
			var survivors []string
			for i, a := range cl.Addrs() {
				if i != vi {
					survivors = append(survivors, a)
				}
			}
			t.Logf("%s %s (pid %d), leader of %d of %d shards, after %s idle", fault, cl.Nodes()[vi].Name, cl.PID(vi), led, shards, idle)
			start := time.Now()
			if fault == FaultKill {
				err = cl.Kill(vi)
			} else {
				err = cl.Pause(vi)
			}
			if err != nil {
				t.Fatal(err)
			}
			times := writeEveryShard(ctx, t, survivors, "idle", shards, start, 15*time.Second)
			if fault == FaultPause {
				if err := cl.Resume(vi); err != nil {
					t.Fatal(err)
				}
			}
			var worst time.Duration
			for s, d := range times {
				if d < 0 {
					t.Errorf("shard %d took no write within 15 s of the %s", s, fault)
					continue
				}
				worst = max(worst, d)
				if d > 5*time.Second {
					t.Errorf("shard %d took its first write %s after the %s (bound 5 s)", s, d.Round(time.Millisecond), fault)
				}
			}
			if !t.Failed() {
				t.Logf("every shard written through a survivor; slowest %s after the %s", worst.Round(time.Millisecond), fault)
			}
		})
	}
}

// waitLeaders waits until every shard of topic has a leader and returns the topic.
func waitLeaders(ctx context.Context, adm *client.Client, topic string, shards int, timeout time.Duration) (*shardlogv1.TopicInfo, error) {
	deadline := time.Now().Add(timeout)
	for {
		info, err := adm.DescribeTopic(ctx, topic, false)
		led := 0
		if err == nil {
			for _, s := range info.GetShards() {
				if s.GetLeaderNodeId() != 0 {
					led++
				}
			}
			if led == shards {
				return info, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("topic %s: %d of %d shards led after %s (last error %v)", topic, led, shards, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mostLeader returns the node that leads the most shards of info, and how many.
func mostLeader(info *shardlogv1.TopicInfo) (node uint64, led int) {
	count := map[uint64]int{}
	for _, s := range info.GetShards() {
		count[s.GetLeaderNodeId()]++
	}
	for id, c := range count {
		if c > led || (c == led && id < node) {
			node, led = id, c
		}
	}
	return node, led
}

// writeEveryShard writes one record to each shard through the given nodes, retrying
// each shard until it is acknowledged or limit has passed since start. It returns, per
// shard, the time from start to the acknowledgement (-1 when there was none).
func writeEveryShard(ctx context.Context, t *testing.T, addrs []string, topic string, shards int, start time.Time, limit time.Duration) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithDeadline(ctx, start.Add(limit))
	defer cancel()
	c, err := client.Dial(ctx, addrs, client.Options{DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer(ctx, topic, client.ProducerOptions{Linger: -1, RequestTimeout: time.Second, DeliveryTimeout: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := make([]time.Duration, shards)
	var wg sync.WaitGroup
	for s := range shards {
		out[s] = -1
		wg.Go(func() {
			msg := client.Message{Shard: client.ToShard(uint32(s)), Value: []byte(fmt.Sprintf("after-failure-%d", s))}
			if _, err := p.SendSync(ctx, msg); err != nil {
				t.Logf("shard %d: %v", s, err)
				return
			}
			out[s] = time.Since(start)
		})
	}
	wg.Wait()
	return out
}
