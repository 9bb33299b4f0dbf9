package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"shardlog/client"
	"shardlog/localcluster"
	"shardlog/proto/shardlogv1"
)

// ScaleTargetRatio is the target for the active-shards run: at least this
// fraction of the few-shards run's throughput.
const ScaleTargetRatio = 0.7

// ScaleConfig is one `shardlog bench scale` run: a topic with many shards is created,
// left idle, and then written through a subset of its shards.
type ScaleConfig struct {
	// Config holds the cluster settings (Servers, Nodes, Binary, Dir, ServerLogLevel,
	// ServerArgs, Topic, Keep, Logger); its Workload is unused.
	Config Config
	// Shards and ReplicationFactor shape the topic.
	Shards, ReplicationFactor int
	// Settle is how long the new topic sits without traffic before the idle window;
	// Idle is the window over which idle CPU is measured.
	Settle, Idle time.Duration
	// Active is the number of shards (0..Active-1) written in the main produce phase;
	// Compare the number written in the comparison phase.
	Active, Compare int
	// Duration is the length of each produce phase.
	Duration time.Duration
	// RecordSize is the value size in bytes; Producers, BatchSize, Linger, InFlight and
	// BufferBytes configure the producers as in Workload.
	RecordSize, Producers, BatchSize int
	Linger                           time.Duration
	InFlight, BufferBytes            int
	// Seed seeds the payloads.
	Seed uint64
}

// DefaultScaleConfig returns the configuration of `shardlog bench scale` without flags
// (Config.Binary and Config.Logger still to be set).
func DefaultScaleConfig() ScaleConfig {
	return ScaleConfig{
		Config: Config{Nodes: 3, ServerLogLevel: "warn"},
		Shards: 1000, ReplicationFactor: 3, Settle: 30 * time.Second, Idle: 30 * time.Second,
		Active: 256, Compare: 8, Duration: 10 * time.Second,
		RecordSize: 100, Producers: 1, BatchSize: client.DefaultBatchBytes, Linger: client.DefaultLinger,
		InFlight: client.DefaultMaxInFlight, BufferBytes: 16 << 20, Seed: 1,
	}
}

// Validate checks sc.
func (sc *ScaleConfig) Validate() error {
	var u usageErrors
	bad := u.add
	if sc.Shards < 1 {
		bad("--shards must be at least 1")
	}
	if sc.ReplicationFactor < 1 {
		bad("--replication-factor must be at least 1")
	}
	if len(sc.Config.Servers) == 0 && sc.ReplicationFactor > sc.Config.Nodes {
		bad("--replication-factor %d exceeds --nodes %d", sc.ReplicationFactor, sc.Config.Nodes)
	}
	if sc.Idle < 0 || sc.Settle < 0 {
		bad("--idle and --settle must not be negative")
	}
	if sc.Active < 1 || sc.Active > sc.Shards {
		bad("--active must be in 1..--shards (%d)", sc.Shards)
	}
	if sc.Compare < 1 || sc.Compare > sc.Shards {
		bad("--compare must be in 1..--shards (%d)", sc.Shards)
	}
	if sc.Duration <= 0 {
		bad("--duration must be positive")
	}
	if sc.RecordSize < 0 {
		bad("--record-size must not be negative")
	}
	validateProducers(&u, sc.Producers, sc.BatchSize, sc.InFlight, sc.BufferBytes)
	return u.err()
}

// ScaleReport is the result of a scale run. Its JSON form is the --json output.
type ScaleReport struct {
	Started time.Time `json:"started"`
	Machine Machine   `json:"machine"`
	// Topic, Nodes, Shards and ReplicationFactor describe what was created; ServerArgs
	// are the extra server flags.
	Topic             string   `json:"topic"`
	Nodes             int      `json:"nodes"`
	Shards            int      `json:"shards"`
	ReplicationFactor int      `json:"replication_factor"`
	ServerArgs        []string `json:"server_args,omitempty"`
	// CreateSeconds is how long CreateTopic took to return; LeadersSeconds how long
	// from the call until DescribeTopic showed a leader for every shard.
	CreateSeconds  float64 `json:"create_seconds"`
	LeadersSeconds float64 `json:"leaders_seconds"`
	// LeadersPerNode counts shard leaders by node (started servers' names n1, n2...;
	// else client addresses or node IDs) once every shard had one.
	LeadersPerNode map[string]int `json:"leaders_per_node"`
	// SettleSeconds is the wait before the idle window, IdleSeconds the measured
	// idle window; Servers holds each started server's cost.
	SettleSeconds float64       `json:"settle_seconds"`
	IdleSeconds   float64       `json:"idle_seconds"`
	Servers       []ScaleServer `json:"servers"`
	// Active is the produce phase over the first Active shards, Compare the one over the
	// first Compare shards; Ratio is Active's records/s over Compare's.
	Active ScaleProduce `json:"active"`
	// Compare is the comparison produce phase.
	Compare ScaleProduce `json:"compare"`
	Ratio   float64      `json:"ratio"`
	// TargetRatio is ScaleTargetRatio.
	TargetRatio float64 `json:"target_ratio"`
	// Errors counts failed records and harness errors; ErrorMessages holds the first
	// few distinct messages.
	Errors        uint64   `json:"errors"`
	ErrorMessages []string `json:"error_messages,omitempty"`
	// Seconds is the length of the whole run.
	Seconds float64 `json:"seconds"`
}

// ScaleServer is one server process's cost in a scale run.
type ScaleServer struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
	// IdleCPUPercent is user+system CPU over the idle window in percent of one core.
	IdleCPUPercent float64 `json:"idle_cpu_percent"`
	// IdleRSSBytes is VmRSS and IdlePeakRSSBytes VmHWM at the end of the idle window.
	IdleRSSBytes     int64 `json:"idle_rss_bytes"`
	IdlePeakRSSBytes int64 `json:"idle_peak_rss_bytes"`
	// PeakRSSBytes is VmHWM at the end of the run.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// ScaleProduce is one closed-loop produce phase of a scale run.
type ScaleProduce struct {
	// Shards is the number of shards written (0..Shards-1, round robin).
	Shards int `json:"shards"`
	// Records and Bytes count acknowledged records and their value bytes.
	Records       uint64  `json:"records"`
	Bytes         uint64  `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// LatencyMs is the acknowledgement latency from Send to the callback.
	LatencyMs Latency `json:"latency_ms"`
	Batches   uint64  `json:"batches"`
	Retries   uint64  `json:"retries"`
	Errors    uint64  `json:"errors"`
	// ServerCPUSeconds is the started servers' summed CPU during the phase.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// RPCErrors counts the producers' failed RPCs by gRPC status code.
	RPCErrors map[string]uint64 `json:"rpc_errors,omitempty"`
}

// RunScale runs the scale benchmark: it starts (or connects to) the cluster, creates
// the topic and times it, measures the idle servers, and runs the two produce phases.
// On an error after the topic was created it returns the partial report too.
func RunScale(ctx context.Context, sc ScaleConfig) (*ScaleReport, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	cfg := sc.Config
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger
	t, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer t.close()
	topic := cfg.Topic
	if topic == "" {
		topic = "scale-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	rep := &ScaleReport{
		Started: time.Now(), Machine: describeMachine(), Topic: topic, Nodes: max(len(t.servers), len(t.addrs)),
		Shards: sc.Shards, ReplicationFactor: sc.ReplicationFactor, ServerArgs: cfg.ServerArgs, TargetRatio: ScaleTargetRatio,
		SettleSeconds: sc.Settle.Seconds(),
	}
	defer func() { rep.Seconds = time.Since(rep.Started).Seconds() }()
	adm, err := client.Dial(ctx, t.addrs, client.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	defer adm.Close()

	// 1. Create the topic and wait for every shard's leader.
	log.Info("creating the topic", "topic", topic, "shards", sc.Shards, "rf", sc.ReplicationFactor)
	if err := timeCreate(ctx, adm, &shardlogv1.TopicSpec{
		Name: topic, Shards: uint32(sc.Shards), ReplicationFactor: uint32(sc.ReplicationFactor), Compression: "none",
	}, nodeNames(ctx, adm, t.servers), rep); err != nil {
		return nil, err
	}
	log.Info("topic ready", "create_seconds", rep.CreateSeconds, "leaders_seconds", rep.LeadersSeconds, "leaders_per_node", rep.LeadersPerNode)
	if !cfg.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			if err := adm.DeleteTopic(dctx, topic); err != nil {
				log.Warn("deleting the topic", "topic", topic, "err", err)
			}
		}()
	}

	// 2. Idle: first let elections, leader balancing and the shards' first snapshots
	// settle, then measure.
	if err := t.scaleIdle(ctx, sc, rep); err != nil {
		return rep, err
	}
	// 3. Produce to the active shards, then to the comparison shards.
	if err := t.scalePhases(ctx, sc, topic, rep); err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

// scaleIdle waits sc.Settle, then measures every started server's CPU and memory
// over sc.Idle into rep.
func (t *target) scaleIdle(ctx context.Context, sc ScaleConfig, rep *ScaleReport) error {
	if sc.Settle > 0 {
		t.log.Info("settling", "for", sc.Settle)
		sleepUntil(ctx, time.Now().Add(sc.Settle))
	}
	t.log.Info("idling", "for", sc.Idle)
	idleStart, before := time.Now(), t.sample()
	sleepUntil(ctx, idleStart.Add(sc.Idle))
	after := t.sample()
	rep.IdleSeconds = time.Since(idleStart).Seconds()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, s := range t.servers {
		rep.Servers = append(rep.Servers, ScaleServer{
			Name: s.name, Addr: s.addr, PID: s.pid,
			IdleCPUPercent: cpuPercent(before[i], after[i], rep.IdleSeconds),
			IdleRSSBytes:   after[i].RSS, IdlePeakRSSBytes: after[i].PeakRSS,
		})
	}
	return nil
}

// scalePhases produces to sc.Active shards, then to sc.Compare shards, and fills in
// rep's phases, their ratio, the servers' peak memory and the errors.
func (t *target) scalePhases(ctx context.Context, sc ScaleConfig, topic string, rep *ScaleReport) error {
	errs := &errorLog{}
	defer func() { rep.Errors, rep.ErrorMessages = errs.n.Load(), errs.messages() }()
	for _, ph := range []struct {
		shards int
		out    *ScaleProduce
	}{{sc.Active, &rep.Active}, {sc.Compare, &rep.Compare}} {
		t.log.Info("producing", "shards", ph.shards, "duration", sc.Duration)
		res, err := t.scaleProduce(ctx, sc, topic, ph.shards, errs)
		*ph.out = res
		if err != nil {
			return err
		}
		t.log.Info("produced", "shards", ph.shards, "records_per_sec", int(res.RecordsPerSec), "mb_per_sec", fmt.Sprintf("%.2f", res.MBPerSec))
	}
	if rep.Compare.RecordsPerSec > 0 {
		rep.Ratio = rep.Active.RecordsPerSec / rep.Compare.RecordsPerSec
	}
	end := t.sample()
	for i := range rep.Servers {
		rep.Servers[i].PeakRSSBytes = end[i].PeakRSS
	}
	return nil
}

// cpuPercent is the CPU used between two samples in percent of one core over seconds;
// 0 when either sample is missing.
func cpuPercent(before, after localcluster.ProcSample, seconds float64) float64 {
	if seconds <= 0 || before.PeakRSS == 0 || after.PeakRSS == 0 {
		return 0
	}
	return 100 * (after.CPU - before.CPU).Seconds() / seconds
}

// nodeNames maps node IDs to the names of the started servers (by client address), or
// to client addresses for an existing cluster; it is empty when the cluster cannot be
// described.
func nodeNames(ctx context.Context, adm *client.Client, servers []server) map[uint64]string {
	out := map[uint64]string{}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := adm.DescribeCluster(ctx)
	if err != nil {
		return out
	}
	for _, n := range cl.GetNodes() {
		out[n.GetNodeId()] = n.GetClientAddr()
		for _, s := range servers {
			if s.addr == n.GetClientAddr() {
				out[n.GetNodeId()] = s.name
			}
		}
	}
	return out
}

// timeCreate creates the topic, recording how long CreateTopic took and how long until
// every shard had a leader, and the leaders per node (named by names, else by ID).
func timeCreate(ctx context.Context, adm *client.Client, spec *shardlogv1.TopicSpec, names map[uint64]string, rep *ScaleReport) error {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := adm.CreateTopic(ctx, spec); err != nil {
		return fmt.Errorf("bench: create topic %s: %w", spec.GetName(), err)
	}
	rep.CreateSeconds = time.Since(start).Seconds()
	for {
		info, err := adm.DescribeTopic(ctx, spec.GetName(), true)
		if err == nil {
			if leaders, ok := leadersPerNode(info, int(spec.GetShards()), names); ok {
				rep.LeadersSeconds = time.Since(start).Seconds()
				rep.LeadersPerNode = leaders
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: topic %s: shards without a leader: %v (%w)", spec.GetName(), err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leadersPerNode counts info's shard leaders by node name (names, else the node ID); ok
// is false unless info has want shards and every one of them has a leader.
func leadersPerNode(info *shardlogv1.TopicInfo, want int, names map[uint64]string) (map[string]int, bool) {
	if len(info.GetShards()) != want {
		return nil, false
	}
	out := map[string]int{}
	for _, s := range info.GetShards() {
		if s.GetLeaderNodeId() == 0 {
			return nil, false
		}
		name, ok := names[s.GetLeaderNodeId()]
		if !ok {
			name = strconv.FormatUint(s.GetLeaderNodeId(), 10)
		}
		out[name]++
	}
	return out, true
}

// scaleProduce runs one closed-loop produce phase over shards 0..shards-1 for
// sc.Duration: every producer sends its records round robin over those shards.
func (t *target) scaleProduce(ctx context.Context, sc ScaleConfig, topic string, shards int, errs *errorLog) (ScaleProduce, error) {
	res := ScaleProduce{Shards: shards}
	var clients []*client.Client
	var producers []*client.Producer
	defer func() {
		for _, p := range producers {
			_ = p.Close()
		}
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	codes := &codeCounter{}
	for range sc.Producers {
		c, err := client.Dial(ctx, t.addrs, client.Options{Logger: t.log,
			DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(codes.intercept)}})
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
		p, err := c.NewProducer(ctx, topic, client.ProducerOptions{
			BatchBytes: sc.BatchSize, Linger: sc.Linger, MaxInFlight: sc.InFlight, Compression: "none",
			MaxBufferedBytes: sc.BufferBytes,
		})
		if err != nil {
			return res, err
		}
		producers = append(producers, p)
	}
	s := &sendState{hist: NewHistogram(), errs: errs}
	before := t.sample()
	errsBefore := errs.n.Load()
	start := time.Now()
	deadline := start.Add(sc.Duration)
	done := make(chan struct{}, len(producers))
	for i, p := range producers {
		go func() {
			defer func() { done <- struct{}{} }()
			s.shardLoop(ctx, sc, p, i, shards, deadline)
		}()
	}
	for range producers {
		<-done
	}
	elapsed := time.Since(start).Seconds()
	after := t.sample()
	for i := range t.servers {
		if before[i].PeakRSS != 0 && after[i].PeakRSS != 0 {
			res.ServerCPUSeconds += (after[i].CPU - before[i].CPU).Seconds()
		}
	}
	for _, p := range producers {
		st := p.Stats()
		res.Batches += st.Batches
		res.Retries += st.Retries
	}
	res.Records, res.Bytes, res.Seconds = s.acked.Load(), s.bytes.Load(), elapsed
	res.RecordsPerSec = rate(res.Records, elapsed)
	res.MBPerSec = mb(rate(res.Bytes, elapsed))
	res.LatencyMs = s.hist.Summary()
	res.Errors = errs.n.Load() - errsBefore
	res.RPCErrors = codes.snapshot()
	return res, ctx.Err()
}

// shardLoop sends producer i's records until deadline, record n to shard
// (i+n*producers) mod shards, as fast as Send accepts them, and ends with a Flush.
func (s *sendState) shardLoop(ctx context.Context, sc ScaleConfig, p *client.Producer, i, shards int, deadline time.Time) {
	payload, err := NewPayload(sc.RecordSize, 0, sc.Seed+uint64(i)*0x9e3779b97f4a7c15)
	if err != nil {
		s.errs.add(err)
		return
	}
	shard := i % shards
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		if !s.send(ctx, p, client.Message{Value: payload.Next(now), Shard: client.ToShard(uint32(shard)), Timestamp: now}) {
			break
		}
		shard = (shard + sc.Producers) % shards
	}
	s.flush(ctx, p)
}

// WriteScaleText prints r as a human-readable table.
func WriteScaleText(w io.Writer, r *ScaleReport) {
	args := ""
	if len(r.ServerArgs) > 0 {
		args = ", server args " + strings.Join(r.ServerArgs, " ")
	}
	fmt.Fprintf(w, "scale      topic %s: %d shards, RF %d on %d nodes%s\n", r.Topic, r.Shards, r.ReplicationFactor, r.Nodes, args)
	fmt.Fprintf(w, "machine    %d CPUs %s, %.1f GiB, %s\n", r.Machine.CPUs, r.Machine.CPUModel, float64(r.Machine.MemBytes)/(1<<30), r.Machine.OS)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "create     CreateTopic returned in %.2f s; every shard had a leader after %.2f s (target <= 30 s)\n", r.CreateSeconds, r.LeadersSeconds)
	if len(r.LeadersPerNode) > 0 {
		fmt.Fprint(w, "leaders   ")
		for _, k := range slices.Sorted(maps.Keys(r.LeadersPerNode)) {
			fmt.Fprintf(w, " %s: %d", k, r.LeadersPerNode[k])
		}
		fmt.Fprintln(w)
	}
	if len(r.Servers) == 0 {
		fmt.Fprintf(w, "idle       %.1f s after %.1f s to settle; servers not measured (not started by the harness)\n", r.IdleSeconds, r.SettleSeconds)
	} else {
		fmt.Fprintf(w, "idle       %.1f s after %.1f s to settle (targets: <= 5%% of one core and <= 2 GiB RSS per node)\n", r.IdleSeconds, r.SettleSeconds)
		fmt.Fprintln(w, "  server     pid   idle CPU %   RSS MiB   peak RSS MiB   run peak RSS MiB")
		for _, s := range r.Servers {
			fmt.Fprintf(w, "  %-6s %7d  %10.2f  %8.1f  %13.1f  %17.1f\n", s.Name, s.PID, s.IdleCPUPercent,
				float64(s.IdleRSSBytes)/(1<<20), float64(s.IdlePeakRSSBytes)/(1<<20), float64(s.PeakRSSBytes)/(1<<20))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "produce    shards     records/s       MB/s   ack p50 ms   ack p99 ms   ack max ms   server CPU s   errors/retries")
	for _, p := range []ScaleProduce{r.Active, r.Compare} {
		l := p.LatencyMs
		fmt.Fprintf(w, "         %8d  %12.0f  %9.2f  %11.2f  %11.2f  %11.2f  %13.2f   %d/%d\n",
			p.Shards, p.RecordsPerSec, p.MBPerSec, l.P50, l.P99, l.Max, p.ServerCPUSeconds, p.Errors, p.Retries)
	}
	verdict := "below"
	if r.Ratio >= r.TargetRatio {
		verdict = "meets"
	}
	fmt.Fprintf(w, "ratio      %d shards reach %.1f%% of the %d-shard throughput (%s the %.0f%% target)\n",
		r.Active.Shards, 100*r.Ratio, r.Compare.Shards, verdict, 100*r.TargetRatio)
	fmt.Fprintf(w, "errors     %d\n", r.Errors)
	for _, m := range r.ErrorMessages {
		fmt.Fprintf(w, "           %s\n", m)
	}
	fmt.Fprintf(w, "took       %.1f s\n", r.Seconds)
}
