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

	"shardlog/client"
	"shardlog/localcluster"
)

// Sentinel errors of the chaos package.
var (
	// ErrUsage reports bad flags or configuration.
	ErrUsage = errors.New("chaos: usage")
	// ErrInconclusive reports a run that could not check everything (a replica that could
	// not be read, a cluster that did not start).
	ErrInconclusive = errors.New("chaos: inconclusive")
)

// The topics a run creates: the busy one, the idle one (IdleShards) and the one with
// retention (RetentionShards).
const (
	Topic          = "chaos"
	IdleTopic      = "chaos-idle"
	RetentionTopic = "chaos-retention"
)

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
	// IdleShards is the idle topic's shard count (default 8; negative: no idle topic).
	// Each idle shard gets one record every IdleInterval (default 20s), the shards in
	// turn, plus a probe of every idle shard as soon as each fault is applied.
	IdleShards   int
	IdleInterval time.Duration
	// RetentionShards is the retention topic's shard count (default 2; negative: no
	// retention topic). Its records expire after Retention (default 4s); one producer
	// writes RetentionRate records/s (default 40) to it; the servers apply retention
	// every RetentionInterval (their --retention-interval, default 1s).
	RetentionShards   int
	Retention         time.Duration
	RetentionRate     int
	RetentionInterval time.Duration
	// MaxUnavailable bounds how long a shard with a live, connected majority of its
	// replicas may stay unwritable (default 10s): longer fails the run.
	MaxUnavailable time.Duration
	// SettleTimeout bounds the wait, after healing, for every replica to catch up, and
	// again for the final read of every replica. Default 60s.
	SettleTimeout time.Duration
	// Dir is where the run's temporary directory is made (default os.TempDir()).
	Dir string
	// KeepDir keeps the run's directory (data and server logs) instead of removing it.
	KeepDir bool
	// ServerLogLevel is the servers' --log-level. Default "info".
	ServerLogLevel string
	// DeadAfter is the servers' --dead-after when kill-forever or drain is among the
	// faults (default 10s), so that a node killed for good is re-replicated within the
	// run; other runs keep the servers' default.
	DeadAfter time.Duration
	// ReplicationTimeout bounds, in runs with kill-forever or drain, the time after the
	// faults end until every shard of every run topic has exactly ReplicationFactor
	// replicas, all on live nodes, no move in progress and a leader. Default 60s.
	ReplicationTimeout time.Duration
	// DrainTimeout bounds the drain: from DrainNode until the node holds no replica and
	// no move from it is in progress. Longer fails the run. Default 60s.
	DrainTimeout time.Duration
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
	if c.IdleShards == 0 {
		c.IdleShards = 8
	}
	if c.IdleInterval == 0 {
		c.IdleInterval = 20 * time.Second
	}
	if c.RetentionShards == 0 {
		c.RetentionShards = 2
	}
	if c.Retention == 0 {
		c.Retention = 4 * time.Second
	}
	if c.RetentionRate == 0 {
		c.RetentionRate = 40
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Second
	}
	if c.MaxUnavailable == 0 {
		c.MaxUnavailable = 10 * time.Second
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 60 * time.Second
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 10 * time.Second
	}
	if c.ReplicationTimeout == 0 {
		c.ReplicationTimeout = 60 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 60 * time.Second
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
	if c.IdleShards > 0 && c.IdleInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("idle interval %s must be at least 100ms", c.IdleInterval))
	}
	if c.RetentionShards > 0 && (c.Retention < 100*time.Millisecond || c.RetentionRate < 1 || c.RetentionInterval < 100*time.Millisecond) {
		errs = append(errs, fmt.Errorf("retention %s and retention interval %s must be at least 100ms, retention rate %d at least 1",
			c.Retention, c.RetentionInterval, c.RetentionRate))
	}
	if c.DeadAfter < 0 || c.ReplicationTimeout < 0 || c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("dead after %s, replication timeout %s and drain timeout %s must not be negative",
			c.DeadAfter, c.ReplicationTimeout, c.DrainTimeout))
	}
	if c.MaxUnavailable < 0 {
		errs = append(errs, fmt.Errorf("max unavailable %s must not be negative", c.MaxUnavailable))
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
	var extra []string
	if cfg.RetentionShards > 0 {
		extra = append(extra, "--retention-interval", cfg.RetentionInterval.String())
	}
	if takesNodes(cfg.Faults) {
		extra = append(extra, "--dead-after", cfg.DeadAfter.String())
	}
	ccfg := localcluster.Config{Binary: cfg.Binary, Nodes: cfg.Nodes, Dir: dir,
		LogLevel: cfg.ServerLogLevel, Logger: log, ExtraArgs: extra}
	if netns != nil {
		ccfg.Net = netns // NB: a nil *Netns in the interface would not be nil
	}
	cl, err := localcluster.New(ccfg)
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
func watchdog(ctx context.Context, cfg Config, cl *localcluster.Cluster, log *slog.Logger) func() {
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
	cl  *localcluster.Cluster
	net *Netns
	dir string
	rec *recorder
	adm *client.Client
	// topics are the run's topics, with each shard's replicas as placed at creation.
	topics []TopicSpec
	idle   *idleWriter

	mu         sync.Mutex // guards the fields below, which the run's goroutines append to or set
	faults     []FaultEvent
	errs       []string
	logStarts  []LogStart
	gone       map[int]goneNode // nodes killed forever or drained and removed, by index
	placements []Placement
	killed     *KillForeverResult
	drained    *DrainResult
	// expectDown marks nodes the run killed on purpose; closing, the end of the run:
	// watchExit reports any other exit.
	expectDown map[int]bool
	closing    bool

	bg sync.WaitGroup // watchFullReplication; ends with the ctx given to inject
}

func (r *run) execute(ctx context.Context) (Report, error) {
	cfg := r.cfg
	plan := Plan(cfg.Seed, cfg.Faults, cfg.Duration, Shape{Nodes: cfg.Nodes, ReplicationFactor: cfg.ReplicationFactor})
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
	if err := r.createTopics(ctx); err != nil {
		return Report{Seed: cfg.Seed}, fmt.Errorf("%w: %w", ErrInconclusive, err)
	}

	r.rec = &recorder{start: time.Now()}
	for i := range r.cl.Nodes() {
		r.watchExit(i)
	}
	defer func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
	}()
	stopProducers, stopConsumers := r.startWorkload(ctx)
	defer stopConsumers()
	defer stopProducers()
	stopWatch := r.watchLogStarts(ctx)
	defer stopWatch()
	stopPlacements := r.watchPlacements(ctx)
	defer stopPlacements()

	ictx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	r.inject(ictx, plan)
	workloadEnd, faultsEnd := r.rec.sinceMs(), time.Now()
	stopProducers()
	stopWatch()
	r.healAll()
	acks, failed, _ := r.rec.counts()
	r.log.Info("workload stopped", "acknowledged", acks, "failed", failed)

	var repl *ReplicationResult
	if takesNodes(cfg.Faults) {
		repl = r.awaitReplication(ctx, faultsEnd)
	}
	stopBg()
	stopPlacements()
	r.bg.Wait()
	ends := r.settle(ctx)
	r.waitConsumers(ctx, ends)
	stopConsumers()
	logs := r.readReplicas(ctx)
	readDone := time.Now().UnixMilli()
	if ctx.Err() != nil {
		return r.interrupted(ctx)
	}

	h, errs := r.history(workloadEnd, readDone, logs)
	h.Replication = repl
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

// healAll resumes and starts every node (but those gone for good) and heals the network.
func (r *run) healAll() {
	if err := heal(r.cl, r.isGone); err != nil {
		r.errorf("heal: %v", err)
	}
	if r.net != nil {
		if err := r.net.Heal(); err != nil {
			r.errorf("heal network: %v", err)
		}
	}
}

// interrupted is the Report of a run whose ctx ended before the final logs were read.
// Without them every acknowledgement would look lost: it reports only what the
// workload did, and calls the run what it is.
func (r *run) interrupted(ctx context.Context) (Report, error) {
	a, f, rd := r.rec.counts()
	rep := Report{Seed: r.cfg.Seed, Acknowledged: a, Indeterminate: f, Reads: rd, Faults: map[string]int{},
		Errors: []string{"interrupted before the final logs were read"}}
	r.mu.Lock()
	for _, ev := range r.faults {
		if !ev.Continued {
			rep.Faults[ev.Type]++
		}
	}
	r.mu.Unlock()
	return rep, fmt.Errorf("%w: interrupted: %w", ErrInconclusive, ctx.Err())
}

// startWorkload starts the producers and consumers of every topic (and the idle
// writer). Each returned func stops its side and waits for it; both may be called more
// than once.
func (r *run) startWorkload(ctx context.Context) (stopProducers, stopConsumers func()) {
	cfg := r.cfg
	wctx, cancelProducers := context.WithCancel(ctx)
	cctx, cancelConsumers := context.WithCancel(ctx)
	rng := NewRand(cfg.Seed ^ 0x5bd1e995)
	var pwg, cwg sync.WaitGroup
	goProducer := func(id int, topic string, rate float64, first int) {
		p := &producer{id: id, addrs: shuffled(rng, r.cl.Addrs()), topic: topic, rate: rate, first: uint64(first),
			flushTimeout: 45 * time.Second, rec: r.rec, log: r.log}
		pwg.Go(func() {
			if err := p.run(wctx); err != nil {
				r.errorf("producer %d (%s): %v", id, topic, err)
			}
		})
	}
	for i := range cfg.Producers {
		goProducer(i, Topic, float64(cfg.Rate)/float64(cfg.Producers), i*cfg.Shards/cfg.Producers)
	}
	if cfg.RetentionShards > 0 {
		goProducer(cfg.Producers, RetentionTopic, float64(cfg.RetentionRate), 0)
	}
	if cfg.IdleShards > 0 {
		r.idle = newIdleWriter(cfg.Producers+1, shuffled(rng, r.cl.Addrs()), IdleTopic, cfg.IdleInterval, r.rec, r.log)
		pwg.Go(func() {
			if err := r.idle.run(wctx); err != nil {
				r.errorf("idle writer: %v", err)
			}
		})
	}
	for _, t := range r.topics {
		for i := range t.Consumers {
			k := &consumer{id: i, addrs: shuffled(rng, r.cl.Addrs()), topic: t.Name, rec: r.rec, log: r.log}
			cwg.Go(func() {
				if err := k.run(cctx); err != nil {
					r.errorf("consumer %d (%s): %v", i, t.Name, err)
				}
			})
		}
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

// probeIdle asks the idle writer (if any) for one record to each of the idle shards
// (nil: every one).
func (r *run) probeIdle(shards []int) {
	if r.idle != nil {
		r.idle.probe(shards)
	}
}

func (r *run) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Warn("harness error", "err", msg)
	r.mu.Lock()
	r.errs = append(r.errs, msg)
	r.mu.Unlock()
}

// startProgress logs counts every 10 s until ctx ends; the returned func waits for it.
func (r *run) startProgress(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		everyTick(ctx, 10*time.Second, func() {
			a, f, rd := r.rec.counts()
			r.log.Info("progress", "t", time.Since(r.rec.start).Round(time.Second), "acknowledged", a, "failed", f, "reads", rd)
		})
	}()
	return func() { <-done }
}

// everyTick runs fn every d until ctx ends: the body of the run's samplers.
func everyTick(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
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

// writeHistory writes h as JSON to path.
func writeHistory(path string, h History) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// history assembles the run's History, and returns the harness errors so far.
func (r *run) history(workloadEnd, readDone int64, logs []ReplicaLog) (History, []string) {
	h := History{Seed: r.cfg.Seed, Topics: r.topics, Workload: Window{0, workloadEnd},
		MaxUnavailableMs: r.cfg.MaxUnavailable.Milliseconds(), ReadDoneUnixMs: readDone,
		Acks: r.rec.acks, Failed: r.rec.failed, Reads: r.rec.reads, Logs: logs}
	for _, n := range r.cl.Nodes() {
		h.Nodes = append(h.Nodes, n.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h.Faults = slices.Clone(r.faults)
	end := max(r.rec.sinceMs(), workloadEnd)
	for i := range h.Faults {
		if h.Faults[i].Forever {
			h.Faults[i].EndMs = end // never healed: down until the end of the history
		}
	}
	if r.killed != nil {
		kf := *r.killed
		h.KillForever = &kf
	}
	if r.drained != nil {
		d := *r.drained
		h.Drain = &d
	}
	h.LogStarts = slices.Clone(r.logStarts)
	h.Placements = slices.Clone(r.placements)
	return h, slices.Clone(r.errs)
}
