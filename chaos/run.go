package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"shardlog/client"
	"shardlog/proto/shardlogv1"
	"shardlog/segment"
)

// Sentinel errors of the chaos package.
var (
	// ErrUsage reports bad flags or configuration.
	ErrUsage = errors.New("chaos: usage")
	// ErrInconclusive reports a run that could not check everything (a replica that could
	// not be read, a cluster that did not start).
	ErrInconclusive = errors.New("chaos: inconclusive")
)

// Topic is the name of the topic a run creates.
const Topic = "chaos"

// Config is one chaos run.
type Config struct {
	// Binary is the shardlog binary that runs the servers.
	Binary string
	// Nodes, Shards and ReplicationFactor shape the cluster and its topic. Defaults 5, 8, 3.
	Nodes, Shards, ReplicationFactor int
	// Faults are the fault types to inject (see AllFaults).
	Faults []string
	// Duration is how long the workload and the faults run. Default 60s.
	Duration time.Duration
	// Seed drives every random choice; the same seed replays the same schedule.
	Seed uint64
	// Producers and Consumers are the workload's clients. Defaults 4 and 2.
	Producers, Consumers int
	// Rate is the total records per second all producers send. Default 1000.
	Rate int
	// SettleTimeout bounds the wait, after healing, for every replica to catch up, and
	// again for the final read of every replica. Default 60s.
	SettleTimeout time.Duration
	// Dir is where the run's temporary directory is made (default os.TempDir()).
	Dir string
	// KeepDir keeps the run's directory (data and server logs) instead of removing it.
	KeepDir bool
	// ServerLogLevel is the servers' --log-level. Default "info".
	ServerLogLevel string
	// HistoryFile, when set, receives the whole History as JSON (to study a failure).
	HistoryFile string
	// Logger receives progress lines. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.Nodes == 0 {
		c.Nodes = 5
	}
	if c.Shards == 0 {
		c.Shards = 8
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 3
	}
	if c.Duration == 0 {
		c.Duration = 60 * time.Second
	}
	if c.Producers == 0 {
		c.Producers = 4
	}
	if c.Consumers == 0 {
		c.Consumers = 2
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 60 * time.Second
	}
	if c.ServerLogLevel == "" {
		c.ServerLogLevel = "info"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("no shardlog binary"))
	}
	if c.Nodes < 1 || c.Nodes > 9 {
		errs = append(errs, fmt.Errorf("nodes %d must be 1..9", c.Nodes))
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > c.Nodes {
		errs = append(errs, fmt.Errorf("replication factor %d must be 1..nodes (%d)", c.ReplicationFactor, c.Nodes))
	}
	if c.Shards < 1 {
		errs = append(errs, fmt.Errorf("shards %d must be at least 1", c.Shards))
	}
	if c.Duration < 5*time.Second {
		errs = append(errs, fmt.Errorf("duration %s must be at least 5s", c.Duration))
	}
	if c.Producers < 1 || c.Consumers < 0 || c.Rate < c.Producers {
		errs = append(errs, fmt.Errorf("need producers >= 1, consumers >= 0, rate >= producers (got %d, %d, %d)",
			c.Producers, c.Consumers, c.Rate))
	}
	for _, f := range c.Faults {
		if f == FaultPartition && c.Nodes < 3 {
			errs = append(errs, errors.New("partition needs at least 3 nodes"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrUsage, errors.Join(errs...))
	}
	return nil
}

// Run starts a cluster, runs the workload under the fault schedule, heals, reads every
// replica and checks the history. The error is non-nil when the run is inconclusive; the
// Report is filled as far as the run got. Every process and (unless KeepDir) every
// directory it made is gone when Run returns.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{Seed: cfg.Seed}, err
	}
	if st, err := os.Stat(cfg.Binary); err != nil || st.IsDir() {
		return Report{Seed: cfg.Seed}, fmt.Errorf("%w: shardlog binary %q not found (make build, or pass --binary)", ErrUsage, cfg.Binary)
	}
	log := cfg.Logger.With("seed", cfg.Seed)
	dir, err := os.MkdirTemp(cfg.Dir, "shardlog-chaos-")
	if err != nil {
		return Report{Seed: cfg.Seed}, fmt.Errorf("chaos: temp dir: %w", err)
	}
	if cfg.KeepDir {
		log.Info("keeping run directory", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var netns *Netns
	if slices.Contains(cfg.Faults, FaultPartition) {
		netns, err = NewNetns(cfg.Nodes, log)
		if err != nil {
			return Report{Seed: cfg.Seed}, fmt.Errorf("%w: partition faults need network namespaces: %w", ErrInconclusive, err)
		}
		defer netns.Close()
	}
	cl, err := NewCluster(ClusterConfig{Binary: cfg.Binary, Nodes: cfg.Nodes, Dir: dir,
		LogLevel: cfg.ServerLogLevel, Net: netns, Logger: log})
	if err != nil {
		return Report{Seed: cfg.Seed}, err
	}
	defer cl.Close()
	stopWatchdog := watchdog(ctx, cfg, cl, log)
	defer stopWatchdog()
	r := &run{cfg: cfg, log: log, cl: cl, net: netns, dir: dir}
	return r.execute(ctx)
}

// watchdog kills the cluster's processes when the run is far over its budget, or still
// running 30 s after ctx ended: every RPC to a dead node then fails at once, so a step
// stuck in one unwinds and Run returns (inconclusive). A last resort; the returned func
// stops it.
func watchdog(ctx context.Context, cfg Config, cl *Cluster, log *slog.Logger) func() {
	budget := cfg.Duration + 4*time.Minute + 3*cfg.SettleTimeout
	done := make(chan struct{})
	go func() {
		hard := time.NewTimer(budget)
		defer hard.Stop()
		select {
		case <-done:
			return
		case <-hard.C:
		case <-ctx.Done():
			select {
			case <-done:
				return
			case <-time.After(30 * time.Second):
			}
		}
		log.Error("chaos run over its time budget: killing the cluster", "budget", budget, "ctx", ctx.Err())
		_ = cl.Close()
	}()
	return func() { close(done) }
}

// run is the state of one Run.
type run struct {
	cfg Config
	log *slog.Logger
	cl  *Cluster
	net *Netns
	dir string
	rec *recorder
	adm *client.Client

	mu     sync.Mutex // guards faults and errs, which the fault and workload goroutines append to
	faults []FaultEvent
	errs   []string
}

func (r *run) execute(ctx context.Context) (Report, error) {
	cfg := r.cfg
	plan := Plan(cfg.Seed, cfg.Faults, cfg.Duration)
	r.log.Info("chaos run", "nodes", cfg.Nodes, "shards", cfg.Shards, "rf", cfg.ReplicationFactor,
		"faults", cfg.Faults, "duration", cfg.Duration, "planned_faults", len(plan), "dir", r.dir)
	if err := r.cl.Start(ctx, 90*time.Second); err != nil {
		return Report{Seed: cfg.Seed}, fmt.Errorf("%w: %w", ErrInconclusive, err)
	}
	adm, err := client.Dial(ctx, r.cl.Addrs(), client.Options{DialTimeout: 10 * time.Second, Logger: r.log})
	if err != nil {
		return Report{Seed: cfg.Seed}, fmt.Errorf("%w: %w", ErrInconclusive, err)
	}
	defer adm.Close()
	r.adm = adm
	if err := r.createTopic(ctx); err != nil {
		return Report{Seed: cfg.Seed}, fmt.Errorf("%w: %w", ErrInconclusive, err)
	}

	r.rec = &recorder{start: time.Now()}
	stopProducers, stopConsumers := r.startWorkload(ctx)
	defer stopConsumers()
	defer stopProducers()

	r.inject(ctx, plan)
	workloadEnd := r.rec.sinceMs()
	stopProducers()
	if err := r.cl.Heal(); err != nil {
		r.errorf("heal: %v", err)
	}
	if r.net != nil {
		if err := r.net.Heal(); err != nil {
			r.errorf("heal network: %v", err)
		}
	}
	acks, failed, _ := r.rec.counts()
	r.log.Info("workload stopped", "acknowledged", acks, "failed", failed)

	shards := r.settle(ctx)
	r.waitConsumers(ctx, shards)
	stopConsumers()
	logs := r.readReplicas(ctx)
	if ctx.Err() != nil {
		// Without the final logs every acknowledgement would look lost: report only
		// what the workload did, and call the run what it is.
		a, f, rd := r.rec.counts()
		rep := Report{Seed: cfg.Seed, Acknowledged: a, Indeterminate: f, Reads: rd, Faults: map[string]int{},
			Errors: []string{"interrupted before the final logs were read"}}
		r.mu.Lock()
		for _, ev := range r.faults {
			rep.Faults[ev.Type]++
		}
		r.mu.Unlock()
		return rep, fmt.Errorf("%w: interrupted: %w", ErrInconclusive, ctx.Err())
	}

	h := History{Seed: cfg.Seed, Shards: uint32(cfg.Shards), Workload: Window{0, workloadEnd},
		Acks: r.rec.acks, Failed: r.rec.failed, Reads: r.rec.reads, Logs: logs}
	r.mu.Lock()
	h.Faults = slices.Clone(r.faults)
	errs := slices.Clone(r.errs)
	r.mu.Unlock()
	if cfg.HistoryFile != "" {
		if err := writeHistory(cfg.HistoryFile, h); err != nil {
			r.errorf("write history: %v", err)
		}
	}
	rep := Check(h)
	for _, k := range cfg.Faults {
		rep.Faults[k] += 0 // list every requested type, even one that never ran
	}
	rep.Errors = append(rep.Errors, errs...)
	if len(rep.Errors) > 0 {
		return rep, fmt.Errorf("%w: %d harness errors, first: %s", ErrInconclusive, len(rep.Errors), rep.Errors[0])
	}
	return rep, nil
}

// startWorkload starts the producers and consumers. Each returned func stops its side
// and waits for it; both may be called more than once.
func (r *run) startWorkload(ctx context.Context) (stopProducers, stopConsumers func()) {
	cfg := r.cfg
	wctx, cancelProducers := context.WithCancel(ctx)
	cctx, cancelConsumers := context.WithCancel(ctx)
	rng := NewRand(cfg.Seed ^ 0x5bd1e995)
	var pwg, cwg sync.WaitGroup
	for i := range cfg.Producers {
		p := &producer{id: i, addrs: shuffled(rng, r.cl.Addrs()), topic: Topic,
			rate: float64(cfg.Rate) / float64(cfg.Producers), flushTimeout: 45 * time.Second, rec: r.rec, log: r.log}
		pwg.Go(func() {
			if err := p.run(wctx); err != nil {
				r.errorf("producer %d: %v", i, err)
			}
		})
	}
	for i := range cfg.Consumers {
		k := &consumer{id: i, addrs: shuffled(rng, r.cl.Addrs()), topic: Topic, rec: r.rec, log: r.log}
		cwg.Go(func() {
			if err := k.run(cctx); err != nil {
				r.errorf("consumer %d: %v", i, err)
			}
		})
	}
	progress := r.startProgress(wctx)
	return func() {
			cancelProducers()
			pwg.Wait()
			progress()
		}, func() {
			cancelConsumers()
			cwg.Wait()
		}
}

func (r *run) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Warn("harness error", "err", msg)
	r.mu.Lock()
	r.errs = append(r.errs, msg)
	r.mu.Unlock()
}

// createTopic creates the run's topic and waits until every shard has a leader.
func (r *run) createTopic(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	spec := &shardlogv1.TopicSpec{Name: Topic, Shards: uint32(r.cfg.Shards), ReplicationFactor: uint32(r.cfg.ReplicationFactor)}
	for {
		_, err := r.adm.CreateTopic(ctx, spec)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("chaos: create topic: %w", err)
		}
		if info, derr := r.adm.DescribeTopic(ctx, Topic, false); derr == nil && info != nil {
			break // an earlier attempt created it
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
	for {
		info, err := r.adm.DescribeTopic(ctx, Topic, true)
		if err == nil && len(info.GetShards()) == r.cfg.Shards {
			ready := true
			for _, s := range info.GetShards() {
				ready = ready && s.GetStatusError() == "" && s.GetLeaderNodeId() != 0
			}
			if ready {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("chaos: topic shards have no leaders: %v", err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// startProgress logs counts every 10 s until ctx ends; the returned func waits for it.
func (r *run) startProgress(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a, f, rd := r.rec.counts()
				r.log.Info("progress", "t", time.Since(r.rec.start).Round(time.Second), "acknowledged", a, "failed", f, "reads", rd)
			}
		}
	}()
	return func() { <-done }
}

// nodeIndex maps a node's client address to its index in the cluster.
func (r *run) nodeIndex(addr string) (int, bool) {
	for i, a := range r.cl.Addrs() {
		if a == addr {
			return i, true
		}
	}
	return 0, false
}

// leaderOf returns the index of the node leading the topic's shard number pick%shards.
func (r *run) leaderOf(ctx context.Context, pick uint64) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := r.adm.DescribeTopic(ctx, Topic, false)
	if err != nil || len(info.GetShards()) == 0 {
		return 0, false
	}
	s := info.GetShards()[pick%uint64(len(info.GetShards()))]
	for _, rep := range s.GetReplicas() {
		if rep.GetNodeId() == s.GetLeaderNodeId() && s.GetLeaderNodeId() != 0 {
			return r.nodeIndex(rep.GetClientAddr())
		}
	}
	return 0, false
}

// target picks the node a kill or pause hits: a shard leader's when asked and known.
func (r *run) target(ctx context.Context, s Step) int {
	if s.Leader {
		if i, ok := r.leaderOf(ctx, s.Pick); ok {
			return i
		}
	}
	return int(s.Pick % uint64(r.cfg.Nodes))
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
		return r.cl.WaitServing(wctx, i)
	}
	switch s.Kind {
	case FaultKill:
		i := r.target(ctx, s)
		ev.Nodes = []string{r.cl.Nodes()[i].Name}
		if err := r.cl.Kill(i); err != nil {
			return err
		}
		sleepCtx(ctx, s.Hold)
		if err := r.cl.StartNode(i); err != nil {
			return err
		}
		return serving(i)
	case FaultPause:
		i := r.target(ctx, s)
		ev.Nodes = []string{r.cl.Nodes()[i].Name}
		if err := r.cl.Pause(i); err != nil {
			return err
		}
		sleepCtx(ctx, s.Hold)
		return r.cl.Resume(i)
	case FaultRestartAll:
		ev.NoMajority = true
		for i, n := range r.cl.Nodes() {
			ev.Nodes = append(ev.Nodes, n.Name)
			if err := r.cl.Kill(i); err != nil {
				return err
			}
		}
		sleepCtx(ctx, s.Hold)
		for i := range r.cl.Nodes() {
			if err := r.cl.StartNode(i); err != nil {
				return err
			}
		}
		// One deadline for all: nodes start in parallel, so waiting for each in turn
		// costs no more than waiting for the slowest.
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		var errs []error
		for i := range r.cl.Nodes() {
			errs = append(errs, r.cl.WaitServing(wctx, i))
		}
		return errors.Join(errs...)
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
		if err := r.net.Partition(sides); err != nil {
			return err
		}
		sleepCtx(ctx, s.Hold)
		return r.net.Heal()
	}
	return fmt.Errorf("unknown fault %q", s.Kind)
}

// settle waits (bounded) until every replica of every shard holds the same next offset
// and returns the topic's shards as last described.
func (r *run) settle(ctx context.Context) []*shardlogv1.ShardInfo {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SettleTimeout)
	defer cancel()
	var shards []*shardlogv1.ShardInfo
	var why string
	for {
		info, err := r.adm.DescribeTopic(ctx, Topic, true)
		if err == nil {
			shards = info.GetShards()
			why = r.unsettled(ctx, shards)
			if why == "" {
				r.log.Info("cluster settled")
				return shards
			}
		} else {
			why = err.Error()
		}
		if ctx.Err() != nil {
			r.log.Warn("cluster did not settle; reading replicas anyway", "why", why)
			return shards
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

// unsettled says why the shards are not settled yet, or "" when every shard has a leader
// and all its replicas report the leader's next offset.
func (r *run) unsettled(ctx context.Context, shards []*shardlogv1.ShardInfo) string {
	for _, s := range shards {
		if s.GetStatusError() != "" {
			return fmt.Sprintf("shard %d: %s", s.GetIndex(), s.GetStatusError())
		}
		for _, rep := range s.GetReplicas() {
			st, err := r.shardStatus(ctx, rep.GetClientAddr(), s.GetShardId())
			if err != nil {
				return fmt.Sprintf("shard %d on %s: %v", s.GetIndex(), rep.GetClientAddr(), err)
			}
			if !st.GetHosted() || st.GetNextOffset() != s.GetNextOffset() {
				return fmt.Sprintf("shard %d on %s: next offset %d, leader's %d", s.GetIndex(), rep.GetClientAddr(),
					st.GetNextOffset(), s.GetNextOffset())
			}
		}
	}
	return ""
}

func (r *run) shardStatus(ctx context.Context, addr string, shardID uint64) (*shardlogv1.ShardStatus, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := shardlogv1.NewClusterClient(cc).ShardStatus(ctx, &shardlogv1.ShardStatusRequest{ShardIds: []uint64{shardID}})
	if err != nil {
		return nil, err
	}
	if len(resp.GetShards()) != 1 {
		return nil, errors.New("no status")
	}
	return resp.GetShards()[0], nil
}

// waitConsumers gives the consumers (bounded) time to read up to every shard's end.
func (r *run) waitConsumers(ctx context.Context, shards []*shardlogv1.ShardInfo) {
	if r.cfg.Consumers == 0 {
		return
	}
	var total uint64
	for _, s := range shards {
		total += s.GetNextOffset()
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, _, reads := r.rec.counts(); uint64(reads) >= total*uint64(r.cfg.Consumers) {
			return
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// readReplicas reads every replica's whole log from its own node (local fetches).
func (r *run) readReplicas(ctx context.Context) []ReplicaLog {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SettleTimeout)
	defer cancel()
	var info *shardlogv1.TopicInfo
	err := ctx.Err()
	for info == nil && ctx.Err() == nil {
		if info, err = r.adm.DescribeTopic(ctx, Topic, false); err != nil {
			info = nil
			sleepCtx(ctx, 300*time.Millisecond)
		}
	}
	if info == nil {
		r.errorf("describe topic for the final read: %v", err)
		return nil
	}
	var logs []ReplicaLog
	for _, s := range info.GetShards() {
		for _, rep := range s.GetReplicas() {
			i, ok := r.nodeIndex(rep.GetClientAddr())
			if !ok {
				r.errorf("shard %d replica on unknown node %s", s.GetIndex(), rep.GetClientAddr())
				continue
			}
			l, err := readReplica(ctx, rep.GetClientAddr(), s.GetIndex())
			if err != nil {
				r.errorf("read shard %d on %s: %v", s.GetIndex(), r.cl.Nodes()[i].Name, err)
				continue
			}
			l.Node = r.cl.Nodes()[i].Name
			logs = append(logs, l)
		}
	}
	return logs
}

// readReplica reads one node's replica of a shard from its start to its end, retrying
// each fetch until ctx ends.
func readReplica(ctx context.Context, addr string, shard uint32) (ReplicaLog, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return ReplicaLog{}, err
	}
	defer cc.Close()
	lc := shardlogv1.NewLogClient(cc)
	l := ReplicaLog{Shard: shard}
	started := false
	for {
		var resp *shardlogv1.FetchResponse
		for {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err = lc.Fetch(fctx, &shardlogv1.FetchRequest{Topic: Topic, Shard: shard, Offset: l.End(),
				MaxBytes: 4 << 20, Local: true})
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return l, err
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		if !started {
			started = true
			if resp.GetLogStartOffset() > 0 && len(resp.GetBatches()) == 0 {
				l.Start = resp.GetLogStartOffset()
				continue
			}
		}
		if len(resp.GetBatches()) == 0 {
			return l, nil
		}
		n := len(l.Values)
		if err := appendBatches(&l, resp.GetBatches()); err != nil {
			return l, err
		}
		if len(l.Values) == n {
			return l, fmt.Errorf("fetch at %d made no progress", l.End())
		}
	}
}

// appendBatches decodes fetched batches onto l, skipping records before l.End().
func appendBatches(l *ReplicaLog, batches []*shardlogv1.StoredBatch) error {
	for _, b := range batches {
		recs, err := segment.DecodeBatch(b.GetData())
		if err != nil {
			return fmt.Errorf("batch at %d: %w", b.GetBaseOffset(), err)
		}
		if len(l.Values) == 0 && b.GetBaseOffset() > l.Start {
			l.Start = b.GetBaseOffset()
		}
		for i, rec := range recs {
			off := b.GetBaseOffset() + uint64(i)
			switch {
			case off < l.End():
				continue
			case off > l.End():
				return fmt.Errorf("gap: batch at %d holds offset %d, expected %d", b.GetBaseOffset(), off, l.End())
			}
			l.Values = append(l.Values, string(rec.Value))
		}
	}
	return nil
}

// writeHistory writes h as JSON to path.
func writeHistory(path string, h History) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
