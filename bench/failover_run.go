package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	wait := r.fc.Settle
	if r.fc.Idle {
		wait = r.fc.IdleWait
		if err := r.firstRecords(ctx); err != nil {
			return err
		}
		defer func() { rep.Acked = r.acks.total.Load() }()
	} else {
		stop, err := r.startLoad(ctx)
		if err != nil {
			return err
		}
		defer func() {
			stop()
			rep.Acked = r.acks.total.Load()
		}()
	}
	// A kill whose shards did not all resume does not end the run: the cluster was
	// healthy again after it, so the next kills still measure. The run fails at the end.
	var failures []string
	for k := range r.fc.Kills {
		sleepUntil(ctx, time.Now().Add(wait))
		if err := ctx.Err(); err != nil {
			return err
		}
		kill, err := r.killOnce(ctx, adm, k)
		if kill != nil {
			rep.Kills = append(rep.Kills, *kill)
			r.log.Info("kill measured", "kill", k+1, "node", kill.Node, "shards", kill.Shards, "not_recovered", kill.NotRecovered,
				"outage_ms_max", kill.OutageMsMax, "outage_ms_median", kill.OutageMsMedian, "leader_ms", kill.LeaderMs)
			if why := killFailure(k+1, *kill, r.fc.Signal, r.fc.Timeout); why != "" {
				failures = append(failures, why)
			}
		}
		if err != nil {
			err = fmt.Errorf("kill %d: %w", k+1, err)
			if len(failures) > 0 {
				err = fmt.Errorf("%s; %w", strings.Join(failures, "; "), err)
			}
			return err
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// firstRecords writes one record to every shard of the idle run, through every node,
// so that each shard has a settled leader before the shards are left to quiesce.
func (r *failoverRun) firstRecords(ctx context.Context) error {
	r.acks = newAckLog(r.fc.Shards)
	all := make([]int, r.fc.Shards)
	for i := range all {
		all[i] = i
	}
	pr, err := newProber(r.t.addrs, r.topic, all, r.fc.RecordSize, r.fc.Seed)
	if err != nil {
		return err
	}
	defer pr.close()
	start := time.Now()
	for _, res := range probeShards(ctx, pr.send, all, start, start.Add(r.fc.Timeout), r.fc.ProbeInterval, r.fc.ProbeTimeout) {
		if res.acked.IsZero() {
			return fmt.Errorf("shard %d: the first record was not acknowledged within %v (%d attempts, last error: %v)",
				res.shard, r.fc.Timeout, res.attempts, res.lastErr)
		}
		r.acks.add(res.shard, res.acked)
	}
	r.log.Info("one record written per shard; leaving the shards idle", "shards", r.fc.Shards, "idle_wait", r.fc.IdleWait)
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
		Compression: "none", DeliveryTimeout: max(2*r.fc.Timeout, client.DefaultDeliveryTimeout), RequestTimeout: r.fc.RequestTimeout,
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
		err := p.Send(ctx, client.Message{Value: payload.Next(intended), Shard: client.ToShard(uint32(shard)), Timestamp: intended}, func(res client.Result) {
			if res.Err != nil {
				r.errs.add(res.Err) // the client names the shard and topic
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

// killOnce measures kill k (0-based): it hits (kills or stops) the node leading shard
// k%Shards (idle: the node leading the most shards), waits for its shards to resume
// and for new leaders, then restarts or continues it and waits until the cluster is
// healthy again. The kill is returned once the node was hit, also with an error (the
// cluster not healthy again); shards that did not resume and leaders not seen are in
// the kill, not errors.
func (r *failoverRun) killOnce(ctx context.Context, adm *client.Client, k int) (*FailoverKill, error) {
	shard := k % r.fc.Shards
	if r.fc.Idle {
		shard = -1
	}
	victim, leader, ls, err := r.pickVictim(ctx, adm, shard)
	if err != nil {
		return nil, err
	}
	affected := make([]int, len(ls))
	for i, s := range ls {
		affected[i] = s.index
	}
	kill := &FailoverKill{Node: r.t.servers[victim].name, NodeID: leader, Shards: affected}
	var survivors []string
	for i, s := range r.t.servers {
		if i != victim {
			survivors = append(survivors, s.addr)
		}
	}
	// Connected before the kill, so that the leader poll and the probes ask a surviving
	// node at once.
	pr, err := newProber(survivors, r.topic, affected, r.fc.RecordSize, r.fc.Seed+uint64(k+1))
	if err != nil {
		return nil, err
	}
	defer pr.close()
	if !r.fc.Idle {
		r.acks.trim(time.Now().Add(-time.Second))
	}
	errsBefore, rpcsBefore := r.errs.n.Load(), r.codes.total()

	killAt := time.Now()
	if err := r.hit(ctx, victim); err != nil {
		return nil, err
	}
	goneAt := time.Now()
	r.log.Info("hit", "node", kill.Node, "signal", r.fc.Signal, "gone_ms", ms(goneAt.Sub(killAt)), "shards", affected)
	deadline := goneAt.Add(r.fc.Timeout)
	type polled struct {
		d   time.Duration
		err error
	}
	leaderDone := make(chan polled, 1)
	go func() {
		d, err := pollLeaders(ctx, pr.conns, ls, leader, killAt, deadline)
		leaderDone <- polled{d, err}
	}()
	var per []ShardOutage
	var failedProbes uint64
	if r.fc.Idle {
		res := probeShards(ctx, pr.send, affected, goneAt, deadline, r.fc.ProbeInterval, r.fc.ProbeTimeout)
		for _, p := range res {
			if !p.acked.IsZero() {
				r.acks.add(p.shard, p.acked)
			}
		}
		per, failedProbes = probeOutages(res, killAt)
	} else {
		per = r.awaitLoad(ctx, affected, killAt, goneAt, deadline)
	}
	lp := <-leaderDone
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kill.fillOutages(per)
	if lp.err != nil {
		kill.LeaderError = lp.err.Error()
	} else {
		kill.LeaderMs = ms(lp.d)
	}
	return kill, r.finishKill(ctx, adm, victim, kill, errsBefore, rpcsBefore, failedProbes)
}

// finishKill restarts or continues the hit node, waits for a healthy cluster and
// completes kill's counters (failedProbes: the probes' failed attempts). It fails
// when the cluster is not healthy again.
func (r *failoverRun) finishKill(ctx context.Context, adm *client.Client, victim int, kill *FailoverKill,
	errsBefore, rpcsBefore, failedProbes uint64) error {
	verb := map[string]string{SignalKill: "restarting", SignalStop: "continuing"}[r.fc.Signal]
	r.log.Info(verb, "node", kill.Node)
	restore := time.Now()
	rerr := r.restore(ctx, adm, victim)
	kill.RecoverSeconds = time.Since(restore).Seconds()
	kill.Errors, kill.FailedRPCs = r.errs.n.Load()-errsBefore, r.codes.total()-rpcsBefore+failedProbes
	return rerr
}

// killFailure says what went wrong in kill k (1-based): shards that took no write
// within timeout, no new leader seen; "" when nothing did.
func killFailure(k int, kill FailoverKill, signal string, timeout time.Duration) string {
	var why []string
	if len(kill.NotRecovered) > 0 {
		why = append(why, fmt.Sprintf("shards %v took no write within %v", kill.NotRecovered, timeout))
	}
	if kill.LeaderError != "" {
		why = append(why, kill.LeaderError)
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("kill %d (%s of %s): %s", k, signal, kill.Node, strings.Join(why, "; "))
}

// awaitLoad waits until every shard in affected has an acknowledgement of the load at
// or after goneAt, or deadline, and measures their outages.
func (r *failoverRun) awaitLoad(ctx context.Context, affected []int, killAt, goneAt, deadline time.Time) []ShardOutage {
	waitUntil(ctx, time.Until(deadline), func() bool {
		for _, s := range affected {
			if !r.acks.since(s, goneAt) {
				return false
			}
		}
		return true
	})
	per := make([]ShardOutage, 0, len(affected))
	for _, s := range affected {
		outage, gap, ok := shardOutage(r.acks.snapshot(s), killAt, goneAt)
		if !ok || killAt.Add(outage).After(deadline) {
			per = append(per, ShardOutage{Shard: s})
			continue
		}
		per = append(per, ShardOutage{Shard: s, Recovered: true, OutageMs: ms(outage), GapMs: ms(gap)})
	}
	return per
}

// hit sends the run's signal to server i and returns once its process is gone (kill)
// or stopped (stop).
func (r *failoverRun) hit(ctx context.Context, i int) error {
	if r.fc.Signal != SignalStop {
		return r.t.cluster.Kill(i)
	}
	pid := r.t.cluster.PID(i)
	if err := r.t.cluster.Pause(i); err != nil {
		return err
	}
	return waitStopped(ctx, pid, 10*time.Second)
}

// pickVictim returns the index of the server leading shard (-1: the server leading the
// most shards), its node ID and the shards it leads.
func (r *failoverRun) pickVictim(ctx context.Context, adm *client.Client, shard int) (victim int, leader uint64, affected []leaderShard, err error) {
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
	leaders := make([]uint64, len(shards))
	for i, s := range shards {
		leaders[i] = s.GetLeaderNodeId()
	}
	if shard < 0 {
		leader = mostLeader(leaders)
		shard = max(slices.Index(leaders, leader), 0)
	} else {
		leader = leaders[shard]
	}
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
		if s.GetLeaderNodeId() != leader {
			continue
		}
		ls := leaderShard{index: int(s.GetIndex()), id: s.GetShardId(), nodeOf: map[uint64]uint64{}}
		for _, rp := range s.GetReplicas() {
			ls.nodeOf[rp.GetReplicaId()] = rp.GetNodeId()
		}
		affected = append(affected, ls)
	}
	return victim, leader, affected, nil
}

// restore starts node i again (kill) or continues it (stop) and waits until it
// serves, every node is ALIVE and every shard of the topic has a leader.
func (r *failoverRun) restore(ctx context.Context, adm *client.Client, i int) error {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	if r.fc.Signal == SignalStop {
		if err := r.t.cluster.Resume(i); err != nil {
			return err
		}
	} else if err := r.t.cluster.StartNode(i); err != nil {
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
			return fmt.Errorf("cluster not healthy %v after restoring %s: %s", recoverTimeout, r.t.servers[i].name, why)
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
