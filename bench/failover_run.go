package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"shardlog/client"
	"shardlog/proto/shardlogv1"
)

// maxAcksPerShard bounds the acknowledgement times kept per shard; past it the older
// half is dropped. Each kill also trims what it no longer needs (see ackLog.trim).
const maxAcksPerShard = 1 << 18

// recoverTimeout bounds the restart of a killed node until the cluster is healthy.
const recoverTimeout = 90 * time.Second

// leaderPollInterval is how often DescribeTopic is polled for new leaders after a kill.
const leaderPollInterval = 50 * time.Millisecond

// ackLog keeps, per shard, the times the producer's callbacks reported success.
// Callbacks of one shard run in offset order on one goroutine, so each shard's times
// are ascending.
type ackLog struct {
	total  atomic.Uint64
	shards []ackShard
}

type ackShard struct {
	mu    sync.Mutex
	times []time.Time
}

func newAckLog(shards int) *ackLog { return &ackLog{shards: make([]ackShard, shards)} }

// add records an acknowledgement of a record on shard at time at.
func (a *ackLog) add(shard int, at time.Time) {
	a.total.Add(1)
	s := &a.shards[shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.times) >= maxAcksPerShard {
		s.times = append(s.times[:0], s.times[len(s.times)/2:]...)
	}
	s.times = append(s.times, at)
}

// snapshot returns a copy of shard's acknowledgement times.
func (a *ackLog) snapshot(shard int) []time.Time {
	s := &a.shards[shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.times)
}

// since reports whether shard has an acknowledgement at or after t.
func (a *ackLog) since(shard int, t time.Time) bool {
	s := &a.shards[shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times) > 0 && !s.times[len(s.times)-1].Before(t)
}

// trim drops every shard's acknowledgements before t except the last of them, which a
// kill after t needs for its gap.
func (a *ackLog) trim(t time.Time) {
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		n := 0
		for n < len(s.times) && s.times[n].Before(t) {
			n++
		}
		if n > 1 {
			s.times = append(s.times[:0], s.times[n-1:]...)
		}
		s.mu.Unlock()
	}
}

// failoverRun is the state of one RunFailover.
type failoverRun struct {
	fc    FailoverConfig
	t     *target
	log   *slog.Logger
	topic string
	errs  *errorLog
	acks  *ackLog
	codes codeCounter
}

// run creates the topic, runs the load and measures the kills into rep.
func (r *failoverRun) run(ctx context.Context, rep *FailoverReport) error {
	adm, err := client.Dial(ctx, r.t.addrs, client.Options{Logger: r.log})
	if err != nil {
		return err
	}
	defer adm.Close()
	r.log.Info("creating the topic", "topic", r.topic, "shards", r.fc.Shards, "rf", r.fc.ReplicationFactor)
	if err := createTopic(ctx, adm, &shardlogv1.TopicSpec{
		Name: r.topic, Shards: uint32(r.fc.Shards), ReplicationFactor: uint32(r.fc.ReplicationFactor), Compression: "none",
	}); err != nil {
		return err
	}
	if !r.fc.Config.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			if err := adm.DeleteTopic(dctx, r.topic); err != nil {
				r.log.Warn("deleting the topic", "topic", r.topic, "err", err)
			}
		}()
	}
	stop, err := r.startLoad(ctx)
	if err != nil {
		return err
	}
	defer func() {
		stop()
		rep.Acked = r.acks.total.Load()
	}()
	for k := range r.fc.Kills {
		sleepUntil(ctx, time.Now().Add(r.fc.Settle))
		if err := ctx.Err(); err != nil {
			return err
		}
		kill, err := r.killOnce(ctx, adm, k)
		if err != nil {
			return fmt.Errorf("bench: kill %d: %w", k+1, err)
		}
		rep.Kills = append(rep.Kills, kill)
		r.log.Info("kill measured", "kill", k+1, "node", kill.Node, "shards", kill.Shards,
			"outage_ms_max", kill.OutageMsMax, "outage_ms_median", kill.OutageMsMedian, "leader_ms", kill.LeaderMs)
	}
	return nil
}

// startLoad starts one goroutine per shard that sends Rate/Shards records/s to its
// shard through one producer. The returned function stops the load, flushes and
// closes the producer.
func (r *failoverRun) startLoad(ctx context.Context) (stop func(), err error) {
	c, err := client.Dial(ctx, r.t.addrs, client.Options{Logger: r.log,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(r.codes.intercept)}})
	if err != nil {
		return nil, err
	}
	// NB: the delivery timeout is well above --timeout so that no record is given up
	// during a failover: the outage is seen as a late acknowledgement, not as an error.
	p, err := c.NewProducer(ctx, r.topic, client.ProducerOptions{
		Compression: "none", DeliveryTimeout: max(2*r.fc.Timeout, client.DefaultDeliveryTimeout),
	})
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	r.acks = newAckLog(r.fc.Shards)
	loadCtx, cancel := context.WithCancel(ctx)
	interval := time.Duration(float64(time.Second) * float64(r.fc.Shards) / r.fc.Rate)
	start := time.Now()
	var wg sync.WaitGroup
	for shard := range r.fc.Shards {
		first := start.Add(interval * time.Duration(shard) / time.Duration(r.fc.Shards)) // stagger the shards
		wg.Go(func() { r.shardLoop(loadCtx, p, shard, first, interval) })
	}
	return func() {
		cancel()
		wg.Wait()
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), r.fc.Timeout)
		defer fcancel()
		if err := p.Flush(fctx); err != nil {
			r.errs.add(fmt.Errorf("bench: flushing the producer: %w", err))
		}
		_ = p.Close()
		_ = c.Close()
	}, nil
}

// shardLoop sends records to shard, record n at first+n*interval, until ctx ends. A
// Send error other than ctx's ends the loop (the error is counted; the next kill then
// reports the shard as not resuming).
func (r *failoverRun) shardLoop(ctx context.Context, p *client.Producer, shard int, first time.Time, interval time.Duration) {
	payload, err := NewPayload(r.fc.RecordSize, 0, r.fc.Seed+uint64(shard)*0x9e3779b97f4a7c15)
	if err != nil {
		r.errs.add(err)
		return
	}
	for n := 0; ; n++ {
		intended := first.Add(time.Duration(n) * interval)
		sleepUntil(ctx, intended)
		if ctx.Err() != nil {
			return
		}
		err := p.Send(ctx, client.Message{Value: payload.Next(intended), Shard: shard, Timestamp: intended}, func(res client.Result) {
			if res.Err != nil {
				r.errs.add(fmt.Errorf("shard %d: %w", shard, res.Err))
				return
			}
			r.acks.add(shard, time.Now())
		})
		if err != nil {
			if ctx.Err() == nil {
				r.errs.add(fmt.Errorf("shard %d: send: %w", shard, err))
			}
			return
		}
	}
}

// killOnce measures kill k (0-based): it kills the node leading shard k%Shards, waits
// for its shards to resume and for new leaders, then restarts it and waits until the
// cluster is healthy again.
func (r *failoverRun) killOnce(ctx context.Context, adm *client.Client, k int) (FailoverKill, error) {
	var kill FailoverKill
	victim, leader, affected, err := r.pickVictim(ctx, adm, k%r.fc.Shards)
	if err != nil {
		return kill, err
	}
	kill.Node, kill.NodeID, kill.Shards = r.t.servers[victim].name, leader, affected
	var survivors []string
	for i, s := range r.t.servers {
		if i != victim {
			survivors = append(survivors, s.addr)
		}
	}
	// Dialed before the kill, so that the leader poll asks a surviving node at once.
	surv, err := client.Dial(ctx, survivors, client.Options{Logger: r.log})
	if err != nil {
		return kill, err
	}
	defer surv.Close()
	r.acks.trim(time.Now().Add(-time.Second))
	errsBefore, rpcsBefore := r.errs.n.Load(), r.codes.total()

	killAt := time.Now()
	if err := r.t.cluster.Kill(victim); err != nil {
		return kill, err
	}
	goneAt := time.Now()
	r.log.Info("killed", "node", kill.Node, "pid_gone_ms", ms(goneAt.Sub(killAt)), "shards", affected)
	deadline := goneAt.Add(r.fc.Timeout)
	type polled struct {
		d   time.Duration
		err error
	}
	leaderDone := make(chan polled, 1)
	go func() {
		d, err := pollLeaders(ctx, surv, r.topic, affected, leader, killAt, deadline)
		leaderDone <- polled{d, err}
	}()
	waitUntil(ctx, time.Until(deadline), func() bool {
		for _, s := range affected {
			if !r.acks.since(s, goneAt) {
				return false
			}
		}
		return true
	})
	lp := <-leaderDone
	if err := ctx.Err(); err != nil {
		return kill, err
	}
	if err := r.measure(&kill, killAt, goneAt, deadline); err != nil {
		return kill, err
	}
	if lp.err != nil {
		return kill, lp.err
	}
	kill.LeaderMs = ms(lp.d)

	r.log.Info("restarting", "node", kill.Node)
	restart := time.Now()
	if err := r.restart(ctx, adm, victim); err != nil {
		return kill, err
	}
	kill.RecoverSeconds = time.Since(restart).Seconds()
	kill.Errors, kill.FailedRPCs = r.errs.n.Load()-errsBefore, r.codes.total()-rpcsBefore
	return kill, nil
}

// pickVictim returns the index of the server leading shard, its node ID and the shards
// it leads.
func (r *failoverRun) pickVictim(ctx context.Context, adm *client.Client, shard int) (victim int, leader uint64, affected []int, err error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := adm.DescribeTopic(dctx, r.topic, false)
	if err != nil {
		return 0, 0, nil, err
	}
	shards := info.GetShards()
	if len(shards) != r.fc.Shards {
		return 0, 0, nil, fmt.Errorf("topic %s has %d shards, want %d", r.topic, len(shards), r.fc.Shards)
	}
	leader = shards[shard].GetLeaderNodeId()
	victim = -1
	for _, rp := range shards[shard].GetReplicas() {
		if leader != 0 && rp.GetNodeId() == leader {
			for i, s := range r.t.servers {
				if s.addr == rp.GetClientAddr() {
					victim = i
				}
			}
		}
	}
	if victim < 0 {
		return 0, 0, nil, fmt.Errorf("shard %d: leader node %d is not a started server", shard, leader)
	}
	for _, s := range shards {
		if s.GetLeaderNodeId() == leader {
			affected = append(affected, int(s.GetIndex()))
		}
	}
	return victim, leader, affected, nil
}

// measure fills kill's outages from the acknowledgement times; a shard without an
// acknowledgement by deadline is an error naming it.
func (r *failoverRun) measure(kill *FailoverKill, killAt, goneAt, deadline time.Time) error {
	var outages, gaps []time.Duration
	var missing []int
	for _, s := range kill.Shards {
		outage, gap, ok := shardOutage(r.acks.snapshot(s), killAt, goneAt)
		if !ok || killAt.Add(outage).After(deadline) {
			missing = append(missing, s)
			continue
		}
		outages, gaps = append(outages, outage), append(gaps, gap)
		kill.PerShard = append(kill.PerShard, ShardOutage{Shard: s, OutageMs: ms(outage), GapMs: ms(gap)})
	}
	if len(missing) > 0 {
		return fmt.Errorf("node %s killed: shards %v did not resume writes within %v", kill.Node, missing, r.fc.Timeout)
	}
	med, mx := medianMax(outages)
	_, gmx := medianMax(gaps)
	kill.OutageMsMedian, kill.OutageMsMax, kill.GapMsMax = ms(med), ms(mx), ms(gmx)
	return nil
}

// pollLeaders polls DescribeTopic every leaderPollInterval until every shard in
// affected has a leader other than dead, and returns the time from killAt to the
// answer that showed it. It fails at deadline, naming the shards still without one.
func pollLeaders(ctx context.Context, c *client.Client, topic string, affected []int, dead uint64, killAt, deadline time.Time) (time.Duration, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	waiting := affected
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		info, err := c.DescribeTopic(cctx, topic, false)
		ccancel()
		at := time.Now()
		if err == nil {
			waiting = waiting[:0:0]
			for _, s := range affected {
				if s >= len(info.GetShards()) {
					waiting = append(waiting, s)
					continue
				}
				if l := info.GetShards()[s].GetLeaderNodeId(); l == 0 || l == dead {
					waiting = append(waiting, s)
				}
			}
			if len(waiting) == 0 {
				return at.Sub(killAt), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("shards %v had no new leader within %v of the kill", waiting, deadline.Sub(killAt).Round(time.Millisecond))
		case <-time.After(leaderPollInterval):
		}
	}
}

// restart starts node i again and waits until it serves, every node is ALIVE and every
// shard of the topic has a leader.
func (r *failoverRun) restart(ctx context.Context, adm *client.Client, i int) error {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	if err := r.t.cluster.StartNode(i); err != nil {
		return err
	}
	if err := r.t.cluster.WaitServing(ctx, i); err != nil {
		return err
	}
	var why string
	for {
		why = r.unhealthy(ctx, adm)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy %v after restarting %s: %s", recoverTimeout, r.t.servers[i].name, why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unhealthy says why the cluster is not healthy yet: a node not ALIVE, or a shard
// without a leader; "" when it is healthy.
func (r *failoverRun) unhealthy(ctx context.Context, adm *client.Client) string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl, err := adm.DescribeCluster(cctx)
	if err != nil {
		return err.Error()
	}
	alive := 0
	for _, n := range cl.GetNodes() {
		if n.GetState() == "ALIVE" {
			alive++
		}
	}
	if alive < len(r.t.servers) {
		return fmt.Sprintf("%d of %d nodes ALIVE", alive, len(r.t.servers))
	}
	info, err := adm.DescribeTopic(cctx, r.topic, true)
	if err != nil {
		return err.Error()
	}
	for _, s := range info.GetShards() {
		if s.GetLeaderNodeId() == 0 || s.GetStatusError() != "" {
			return fmt.Sprintf("shard %d has no leader %s", s.GetIndex(), s.GetStatusError())
		}
	}
	return ""
}

// total is the number of failed RPCs counted so far.
func (c *codeCounter) total() uint64 {
	var n uint64
	for _, v := range c.snapshot() {
		n += v
	}
	return n
}
