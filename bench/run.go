package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"shardlog/client"
	"shardlog/localcluster"
	"shardlog/proto/shardlogv1"
)

// Workload is what one run sends and reads.
type Workload struct {
	// Shards and ReplicationFactor shape the topic.
	Shards, ReplicationFactor int
	// RecordSize is the value size in bytes.
	RecordSize int
	// Keys is the key distribution.
	Keys KeyDist
	// Compressibility is the fraction of each value a compressor can remove (0..1).
	Compressibility float64
	// Compression is the batch codec: none, s2 or zstd.
	Compression string
	// Producers is the number of producer clients; Consumers the number of consumer
	// clients (0: no consume phases).
	Producers, Consumers int
	// BatchSize (bytes), Linger and InFlight configure each producer.
	BatchSize int
	Linger    time.Duration
	InFlight  int
	// BufferBytes bounds each producer's bytes sent and not yet acknowledged (0: the
	// client's default, 64 MiB); in a closed-loop run it sets the queueing latency.
	BufferBytes int
	// Duration bounds the produce phase unless Records is set; Records is the total
	// number of records to produce (0: as many as fit in Duration).
	Duration time.Duration
	Records  int64
	// Rate is the fixed total send rate in records/s (0: closed loop, as fast as the
	// producers' windows allow).
	Rate float64
	// Seed seeds payloads and keys.
	Seed uint64
	// BacklogTimeout bounds the backlog read (default 60s); TailTimeout bounds the wait
	// for tailing consumers to catch up after the produce phase (default 30s).
	BacklogTimeout, TailTimeout time.Duration
}

// validateProducers checks the producer settings that `bench` and `bench scale` share.
func validateProducers(u *usageErrors, producers, batchSize, inFlight, bufferBytes int) {
	bad := u.add
	if producers < 1 {
		bad("--producers must be at least 1")
	}
	if batchSize < 1 {
		bad("--batch-size must be at least 1")
	}
	if bufferBytes < 0 {
		bad("--buffer must not be negative")
	}
	if inFlight < 1 {
		bad("--inflight must be at least 1")
	}
}

// DefaultWorkload returns the workload of `shardlog bench` without flags.
func DefaultWorkload() Workload {
	return Workload{
		Shards: 8, ReplicationFactor: 3, RecordSize: 100, Keys: KeyDist{Kind: KeysNone},
		Compression: "none", Producers: 1, Consumers: 1,
		BatchSize: client.DefaultBatchBytes, Linger: client.DefaultLinger, InFlight: client.DefaultMaxInFlight,
		Duration: 15 * time.Second,
	}
}

// Validate checks the workload.
func (w *Workload) Validate() error {
	var u usageErrors
	bad := u.add
	if w.Shards < 1 {
		bad("--shards must be at least 1")
	}
	if w.ReplicationFactor < 1 {
		bad("--replication-factor must be at least 1")
	}
	if w.RecordSize < 0 {
		bad("--record-size must not be negative")
	}
	if w.Compressibility < 0 || w.Compressibility > 1 || w.Compressibility != w.Compressibility {
		bad("--compressibility must be in 0..1")
	}
	switch w.Compression {
	case "none", "s2", "zstd":
	default:
		bad("--compression %q: want none, s2 or zstd", w.Compression)
	}
	validateProducers(&u, w.Producers, w.BatchSize, w.InFlight, w.BufferBytes)
	if w.Consumers < 0 {
		bad("--consumers must not be negative")
	}
	if w.Records < 0 {
		bad("--records must not be negative")
	}
	if w.Records == 0 && w.Duration <= 0 {
		bad("--duration must be positive when --records is not set")
	}
	if w.Rate < 0 {
		bad("--rate must not be negative")
	}
	if w.Keys.Kind == "" {
		w.Keys.Kind = KeysNone
	}
	if w.BacklogTimeout <= 0 {
		w.BacklogTimeout = 60 * time.Second
	}
	if w.TailTimeout <= 0 {
		w.TailTimeout = 30 * time.Second
	}
	return u.err()
}

func (w *Workload) info(topic string, nodes int) WorkloadInfo {
	return WorkloadInfo{
		Topic: topic, Nodes: nodes, Shards: w.Shards, ReplicationFactor: w.ReplicationFactor,
		RecordSize: w.RecordSize, Keys: w.Keys.String(), Compressibility: w.Compressibility,
		Compression: w.Compression, Producers: w.Producers, BatchSize: w.BatchSize,
		LingerMs: float64(w.Linger) / float64(time.Millisecond), InFlight: w.InFlight, BufferBytes: w.BufferBytes,
		Consumers: w.Consumers, DurationSec: w.Duration.Seconds(), Records: w.Records, Rate: w.Rate,
	}
}

// Config is one `shardlog bench` run.
type Config struct {
	// Servers are client addresses of an existing cluster; empty starts Nodes server
	// processes of Binary on 127.0.0.1 under Dir (default: the system temp dir).
	Servers []string
	Nodes   int
	Binary  string
	Dir     string
	// ServerLogLevel is the started servers' --log-level (default warn).
	ServerLogLevel string
	// ServerArgs are appended to every started server's command line.
	ServerArgs []string
	// Topic is the topic to create (default bench-<time>); Keep keeps it (and a started
	// cluster's directory) after the run.
	Topic string
	Keep  bool
	// Baseline adds the segment-store-alone and replication-factor-1 measurements.
	Baseline bool
	Workload Workload
	Logger   *slog.Logger
}

// Run runs one benchmark: it starts or connects to the cluster, runs the workload and,
// with Baseline, the baselines.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Workload.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer t.close()
	topic := cfg.Topic
	if topic == "" {
		topic = "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	rep, err := t.run(ctx, cfg.Workload, topic, cfg.Keep)
	if rep != nil && t.cluster != nil {
		rep.ServerArgs = cfg.ServerArgs
	}
	if err != nil {
		return rep, err
	}
	if cfg.Baseline {
		rep.Baseline = &Baseline{}
		cfg.Logger.Info("baseline: segment store alone")
		seg, err := SegmentBaseline(ctx, cfg.Workload, cfg.Dir)
		if err != nil {
			return rep, err
		}
		rep.Baseline.Segment = seg
		if cfg.Workload.ReplicationFactor != 1 {
			cfg.Logger.Info("baseline: replication factor 1")
			w1 := cfg.Workload
			w1.ReplicationFactor = 1
			if rep.Baseline.RF1, err = t.run(ctx, w1, topic+"-rf1", cfg.Keep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// server is a server process the harness watches.
type server struct {
	name, addr string
	pid        int
}

// target is the cluster under test.
type target struct {
	addrs   []string
	cluster *localcluster.Cluster
	dir     string // the started cluster's directory, removed by close unless keep
	keep    bool
	servers []server
	log     *slog.Logger
}

// connect starts a cluster or uses cfg.Servers.
func connect(ctx context.Context, cfg Config) (*target, error) {
	t := &target{log: cfg.Logger, keep: cfg.Keep}
	if len(cfg.Servers) > 0 {
		t.addrs = cfg.Servers
		return t, nil
	}
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("%w: --nodes must be at least 1", ErrUsage)
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("%w: server binary: %v (build it with make build, or pass --binary)", ErrUsage, err)
	}
	dir, err := os.MkdirTemp(cfg.Dir, "shardlog-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	level := cfg.ServerLogLevel
	if level == "" {
		level = "warn"
	}
	c, err := localcluster.New(localcluster.Config{Binary: cfg.Binary, Nodes: cfg.Nodes, Dir: dir, LogLevel: level,
		Logger: cfg.Logger, ExtraArgs: cfg.ServerArgs})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	t.cluster, t.dir = c, dir
	cfg.Logger.Info("starting cluster", "nodes", cfg.Nodes, "dir", dir, "server_args", cfg.ServerArgs)
	if err := c.Start(ctx, 90*time.Second); err != nil {
		t.close()
		return nil, err
	}
	t.addrs = c.Addrs()
	for i, n := range c.Nodes() {
		t.servers = append(t.servers, server{name: n.Name, addr: n.Addr, pid: c.PID(i)})
	}
	return t, nil
}

// close stops a started cluster and removes its directory unless keep.
func (t *target) close() {
	if t.cluster == nil {
		return
	}
	if err := t.cluster.Close(); err != nil {
		t.log.Warn("stopping the cluster", "err", err)
	}
	if t.keep {
		t.log.Info("kept the cluster's directory", "dir", t.dir)
		return
	}
	if err := os.RemoveAll(t.dir); err != nil {
		t.log.Warn("removing the cluster's directory", "err", err)
	}
}

// sample reads every watched server's /proc counters; a failed read leaves a zero.
func (t *target) sample() []localcluster.ProcSample {
	out := make([]localcluster.ProcSample, len(t.servers))
	for i, s := range t.servers {
		ps, err := localcluster.ReadProc(s.pid)
		if err != nil {
			t.log.Warn("reading server stats", "server", s.name, "err", err)
			continue
		}
		out[i] = ps
	}
	return out
}

// errorLog counts errors and keeps the first distinct messages.
type errorLog struct {
	n    atomic.Uint64
	mu   sync.Mutex
	msgs []string
}

const maxErrorMessages = 5

func (e *errorLog) add(err error) {
	e.n.Add(1)
	msg := err.Error()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.msgs) >= maxErrorMessages {
		return
	}
	for _, m := range e.msgs {
		if m == msg {
			return
		}
	}
	e.msgs = append(e.msgs, msg)
}

func (e *errorLog) messages() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.msgs...)
}

// run measures workload w on a new topic.
func (t *target) run(ctx context.Context, w Workload, topic string, keep bool) (*Report, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Machine: describeMachine(), Workload: w.info(topic, max(len(t.servers), len(t.addrs)))}
	adm, err := client.Dial(ctx, t.addrs, client.Options{Logger: t.log})
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	created := time.Now()
	if err := createTopic(ctx, adm, &shardlogv1.TopicSpec{
		Name: topic, Shards: uint32(w.Shards), ReplicationFactor: uint32(w.ReplicationFactor), Compression: w.Compression,
	}); err != nil {
		return nil, err
	}
	rep.Produce.TopicCreateSeconds = time.Since(created).Seconds()
	t.log.Info("topic ready", "topic", topic, "shards", w.Shards, "rf", w.ReplicationFactor, "seconds", rep.Produce.TopicCreateSeconds)
	if !keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := adm.DeleteTopic(dctx, topic); err != nil {
				t.log.Warn("deleting the topic", "topic", topic, "err", err)
			}
		}()
	}
	errs := &errorLog{}
	before := t.sample()

	// Tailing consumers run during the produce phase.
	tail, err := startTailers(ctx, adm, topic, w, errs)
	defer tail.stop()
	if err != nil {
		return nil, err
	}

	t.log.Info("producing", "topic", topic, "duration", w.Duration, "records", w.Records, "rate", w.Rate)
	stats, err := t.produce(ctx, w, topic, rep, errs)
	if err != nil {
		return nil, err
	}
	rep.Retries = stats.Retries
	rep.Produce.WireBytes, rep.Produce.Batches = stats.Bytes, stats.Batches
	mid := t.sample()

	ends, err := endOffsets(ctx, adm, topic)
	if err != nil {
		errs.add(err)
	}
	var total uint64
	for _, e := range ends {
		total += e
	}
	if w.Consumers > 0 {
		waitUntil(ctx, w.TailTimeout, func() bool { return tail.stats.records.Load() >= total })
	}
	tail.stop()
	rep.Consume.TailRecords = tail.stats.records.Load()
	rep.Consume.E2ELatencyMs = tail.stats.hist.Summary()

	if w.Consumers > 0 && ends != nil {
		t.log.Info("reading the backlog", "records", total)
		backlog(ctx, adm, topic, w, ends, &rep.Consume, errs)
	}
	rep.Servers = t.serverResults(before, mid, t.sample())
	rep.Errors = errs.n.Load()
	rep.ErrorMessages = errs.messages()
	return rep, ctx.Err()
}

// serverResults are the started servers' CPU over the run (before to after) and
// over the produce phase (before to mid), and their memory at the end.
func (t *target) serverResults(before, mid, after []localcluster.ProcSample) []ServerResult {
	var out []ServerResult
	for i, s := range t.servers {
		out = append(out, ServerResult{
			Name: s.name, Addr: s.addr, PID: s.pid,
			CPUSeconds:        (after[i].CPU - before[i].CPU).Seconds(),
			ProduceCPUSeconds: (mid[i].CPU - before[i].CPU).Seconds(),
			PeakRSSBytes:      after[i].PeakRSS, RSSBytes: after[i].RSS,
		})
	}
	return out
}

// tailers are the consumers that tail a topic during the produce phase, each reading
// its share of the shards from the start and recording end-to-end latency in stats.
type tailers struct {
	stats  *consumeStats
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startTailers starts w.Consumers tailing consumers of topic. On an error the ones
// already started still need stop.
func startTailers(ctx context.Context, adm *client.Client, topic string, w Workload, errs *errorLog) (*tailers, error) {
	tctx, cancel := context.WithCancel(ctx)
	tl := &tailers{stats: &consumeStats{hist: NewHistogram()}, cancel: cancel}
	for i := range w.Consumers {
		shards := shardsOf(i, w.Consumers, w.Shards)
		if len(shards) == 0 {
			continue
		}
		k, err := adm.NewConsumer(ctx, topic, client.ConsumerOptions{Shards: shards, Start: client.StartEarliest})
		if err != nil {
			return tl, err
		}
		tl.wg.Go(func() {
			defer k.Close()
			consumeLoop(tctx, k, tl.stats, errs, nil)
		})
	}
	return tl, nil
}

// stop ends the tailing consumers and waits for them; it may be called again.
func (tl *tailers) stop() {
	tl.cancel()
	tl.wg.Wait()
}

// shardsOf returns the shards consumer i of n reads: every n-th shard from i.
func shardsOf(i, n, shards int) []uint32 {
	var out []uint32
	for s := i; s < shards; s += n {
		out = append(out, uint32(s))
	}
	return out
}

// createTopic creates the topic and waits until every shard has a leader.
func createTopic(ctx context.Context, adm *client.Client, spec *shardlogv1.TopicSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if _, err := adm.CreateTopicAndWait(ctx, spec); err != nil {
		return fmt.Errorf("bench: create topic %s: %w", spec.GetName(), err)
	}
	return nil
}

// endOffsets returns every shard's next offset.
func endOffsets(ctx context.Context, adm *client.Client, topic string) (map[uint32]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		info, err := adm.DescribeTopic(ctx, topic, true)
		if err == nil {
			ends := make(map[uint32]uint64, len(info.GetShards()))
			ok := true
			for _, s := range info.GetShards() {
				ok = ok && s.GetStatusError() == ""
				ends[s.GetIndex()] = s.GetNextOffset()
			}
			if ok {
				return ends, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: end offsets of %s: %v (%w)", topic, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitUntil polls cond every 20ms until it holds, timeout passes or ctx ends.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	return waitUntilEvery(ctx, timeout, 20*time.Millisecond, cond)
}

// waitUntilEvery polls cond every step until it holds, timeout passes or ctx ends.
func waitUntilEvery(ctx context.Context, timeout, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleepUntil(ctx, time.Now().Add(step))
	}
	return true
}

// sleepUntil sleeps until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
