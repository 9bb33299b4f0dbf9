package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"shardlog/client"
)

// FailoverTargetSeconds is the target for `shardlog bench failover`: after
// the node leading a shard is killed, writes to the shard resume within this many
// seconds (the median over the kills of the worst affected shard's outage).
const FailoverTargetSeconds = 1.5

// Signals the failover benchmark sends to the leader's node (FailoverConfig.Signal).
const (
	// SignalKill is SIGKILL; the node is restarted after the measurement.
	SignalKill = "kill"
	// SignalStop is SIGSTOP; the node is continued (SIGCONT) after the measurement.
	SignalStop = "stop"
)

// FailoverConfig is one `shardlog bench failover` run: Kills times, the node leading a
// shard is killed (or stopped) and the time until its shards take writes again is
// measured. In the busy mode (the default) a started cluster takes a fixed-rate write
// load meanwhile; in the idle mode it takes none, so that the shards quiesce.
type FailoverConfig struct {
	// Config holds the cluster settings (Nodes, Binary, Dir, ServerLogLevel,
	// ServerArgs, Topic, Keep, Logger). Servers must be empty: the run kills server processes, so it
	// starts its own. Its Workload is unused.
	Config Config
	// Shards and ReplicationFactor shape the topic (default 8 and 3).
	Shards, ReplicationFactor int
	// RecordSize is the value size in bytes (default 100).
	RecordSize int
	// Rate is the total send rate in records/s, spread evenly over the shards
	// (default 2000).
	Rate float64
	// Kills is the number of measured kills (default 3).
	Kills int
	// Settle is how long steady traffic runs before each kill (default 10 s). Kills
	// within a few seconds of the previous victim's restart measure that restart's
	// transient too: with 3 s, outages of 2.3-2.7 s, while the servers' logs showed
	// their Raft transport resetting connections to the restarted node.
	Settle time.Duration
	// Timeout bounds the wait for every affected shard to resume and for new leaders
	// (default 20s); a shard that does not resume within it fails the run.
	Timeout time.Duration
	// Seed seeds the payloads.
	Seed uint64
	// RequestTimeout bounds one Produce call of the busy mode's producer (default
	// client.DefaultRequestTimeout). NB: a call to a stopped leader hangs until it.
	RequestTimeout time.Duration
	// Signal is SignalKill (default) or SignalStop.
	Signal string
	// Idle selects the idle mode: after one record per shard, no load; before each kill
	// nothing is written for IdleWait (instead of Settle), then the node leading the most
	// shards is hit and each of its shards is probed with one record sent through the
	// surviving nodes, attempt after attempt, until one is acknowledged or Timeout
	// passes.
	Idle bool
	// IdleWait is the quiet time before each idle kill (default 15 s: the servers'
	// shards quiesce after ElectionRTT*10 ticks of no traffic, 5 s with their defaults).
	IdleWait time.Duration
	// ProbeInterval is the time between the starts of a probe's attempts (default
	// 100 ms) and ProbeTimeout bounds one attempt (default 500 ms).
	ProbeInterval, ProbeTimeout time.Duration
}

// mode is the run's mode for the report: "idle" or "busy".
func (fc *FailoverConfig) mode() string {
	if fc.Idle {
		return "idle"
	}
	return "busy"
}

// DefaultFailoverConfig returns the configuration of `shardlog bench failover` without
// flags (Config.Binary and Config.Logger still to be set).
func DefaultFailoverConfig() FailoverConfig {
	return FailoverConfig{
		Config: Config{Nodes: 3, ServerLogLevel: "warn"},
		Shards: 8, ReplicationFactor: 3, RecordSize: 100, Rate: 2000,
		Kills: 3, Settle: 10 * time.Second, Timeout: 20 * time.Second, Seed: 1,
		RequestTimeout: client.DefaultRequestTimeout, Signal: SignalKill, IdleWait: 15 * time.Second, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond,
	}
}

// Validate checks fc and reports every problem at once.
func (fc *FailoverConfig) Validate() error {
	var u usageErrors
	bad := u.add
	if len(fc.Config.Servers) > 0 {
		bad("--server is not supported by bench failover: it kills server processes, so it starts its own cluster")
	}
	if fc.Config.Nodes < 3 {
		bad("--nodes must be at least 3 (a killed node must leave a quorum)")
	}
	if fc.Shards < 1 {
		bad("--shards must be at least 1")
	}
	if fc.ReplicationFactor < 3 {
		bad("--replication-factor must be at least 3 (a shard must keep a quorum when one node is killed)")
	}
	if fc.ReplicationFactor > fc.Config.Nodes {
		bad("--replication-factor %d exceeds --nodes %d", fc.ReplicationFactor, fc.Config.Nodes)
	}
	if fc.RecordSize < 0 {
		bad("--record-size must not be negative")
	}
	if !(fc.Rate > 0) || fc.Rate > 1e7 {
		bad("--rate must be in (0, 1e7] records/s")
	}
	if fc.Kills < 1 {
		bad("--kills must be at least 1")
	}
	if fc.Settle < 0 {
		bad("--settle must not be negative")
	}
	if fc.Timeout <= 0 {
		bad("--timeout must be positive")
	}
	if fc.RequestTimeout <= 0 {
		bad("--request-timeout must be positive")
	}
	if fc.Signal != SignalKill && fc.Signal != SignalStop {
		bad("--signal must be %s or %s, not %q", SignalKill, SignalStop, fc.Signal)
	}
	if fc.IdleWait < 0 {
		bad("--idle-wait must not be negative")
	}
	if fc.ProbeInterval <= 0 {
		bad("--probe-interval must be positive")
	}
	if fc.ProbeTimeout <= 0 || fc.ProbeTimeout > fc.Timeout {
		bad("--probe-timeout must be positive and at most --timeout")
	}
	return u.err()
}

// FailoverReport is the result of a failover run. Its JSON form is the --json output.
type FailoverReport struct {
	Started time.Time `json:"started"`
	Machine Machine   `json:"machine"`
	// Topic, Nodes, Shards, ReplicationFactor, RecordSize and Rate describe the run;
	// ServerArgs are the extra server flags.
	Topic             string   `json:"topic"`
	Nodes             int      `json:"nodes"`
	Shards            int      `json:"shards"`
	ReplicationFactor int      `json:"replication_factor"`
	RecordSize        int      `json:"record_size"`
	Rate              float64  `json:"rate"`
	ServerArgs        []string `json:"server_args,omitempty"`
	// Mode is "busy" (under load) or "idle" (--idle); Signal is "kill" or "stop".
	Mode   string `json:"mode"`
	Signal string `json:"signal"`
	// SettleSeconds, TimeoutSeconds and RequestTimeoutSeconds are the --settle,
	// --timeout and --request-timeout values.
	SettleSeconds         float64 `json:"settle_seconds"`
	TimeoutSeconds        float64 `json:"timeout_seconds"`
	RequestTimeoutSeconds float64 `json:"request_timeout_seconds"`
	// IdleWaitSeconds, ProbeIntervalMs and ProbeTimeoutMs are the --idle-wait,
	// --probe-interval and --probe-timeout values of an idle run.
	IdleWaitSeconds float64 `json:"idle_wait_seconds,omitempty"`
	ProbeIntervalMs float64 `json:"probe_interval_ms,omitempty"`
	ProbeTimeoutMs  float64 `json:"probe_timeout_ms,omitempty"`
	// Kills holds one entry per measured kill, in order.
	Kills []FailoverKill `json:"kills"`
	// OutageMsMedian and OutageMsMax are the median and the maximum over the kills
	// whose shards all resumed of each kill's worst-shard outage
	// (FailoverKill.OutageMsMax).
	OutageMsMedian float64 `json:"outage_ms_median"`
	OutageMsMax    float64 `json:"outage_ms_max"`
	// NotRecovered counts the affected shards, over all kills, that took no write
	// within the timeout.
	NotRecovered int `json:"not_recovered"`
	// TargetSeconds is FailoverTargetSeconds; Met reports OutageMsMedian <= it and
	// that every shard resumed (false when no kill completed).
	TargetSeconds float64 `json:"target_seconds"`
	Met           bool    `json:"met"`
	// Acked counts acknowledged records; Errors counts failed records and harness
	// errors over the whole run, ErrorMessages holds the first few distinct messages.
	Acked         uint64   `json:"acked"`
	Errors        uint64   `json:"errors"`
	ErrorMessages []string `json:"error_messages,omitempty"`
	// Seconds is the length of the whole run.
	Seconds float64 `json:"seconds"`
}

// FailoverKill is one measured kill.
type FailoverKill struct {
	// Node is the killed server's name (n1, n2...), NodeID its node ID.
	Node   string `json:"node"`
	NodeID uint64 `json:"node_id"`
	// Shards are the indexes of the shards the node led when it was killed.
	Shards []int `json:"shards"`
	// OutageMsMax and OutageMsMedian are the maximum and the median over the resumed
	// Shards of the time from the kill to the shard's first acknowledgement after it.
	OutageMsMax    float64 `json:"outage_ms_max"`
	OutageMsMedian float64 `json:"outage_ms_median"`
	// GapMsMax is the maximum over the resumed Shards of the time between the last
	// acknowledgement before the kill and the first one after it (busy mode only).
	GapMsMax float64 `json:"gap_ms_max"`
	// NotRecovered are the Shards without an acknowledged write within the timeout.
	NotRecovered []int `json:"not_recovered,omitempty"`
	// LeaderMs is the time from the kill until the surviving nodes' ShardStatus showed
	// a leader other than the killed node for every shard in Shards;
	// LeaderError says why that was not seen (then LeaderMs is 0).
	LeaderMs    float64 `json:"leader_ms"`
	LeaderError string  `json:"leader_error,omitempty"`
	// Errors counts failed records from the kill until the cluster was healthy again;
	// FailedRPCs counts the producer's failed Produce calls (retried) in that window.
	Errors     uint64 `json:"errors"`
	FailedRPCs uint64 `json:"failed_rpcs"`
	// RecoverSeconds is the time from restarting (kill) or continuing (stop) the node
	// until it served, every node was ALIVE and every shard had a leader again.
	RecoverSeconds float64 `json:"recover_seconds"`
	// PerShard holds each affected shard's outage.
	PerShard []ShardOutage `json:"per_shard"`
}

// ShardOutage is one shard's write outage after a kill.
type ShardOutage struct {
	Shard int `json:"shard"`
	// Recovered reports an acknowledged write within the timeout; without one,
	// OutageMs and GapMs are 0.
	Recovered bool `json:"recovered"`
	// OutageMs is the time from the kill to the shard's first acknowledgement after it;
	// GapMs the time between its last acknowledgement before the kill and that one
	// (busy mode only).
	OutageMs float64 `json:"outage_ms"`
	GapMs    float64 `json:"gap_ms"`
	// Attempts counts the probe's Produce calls and LastError is the error of the last
	// failed one (idle mode only).
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// summarize fills the report's summary from its kills.
func (r *FailoverReport) summarize() {
	var worst []time.Duration
	r.NotRecovered = 0
	for _, k := range r.Kills {
		r.NotRecovered += len(k.NotRecovered)
		if len(k.NotRecovered) == 0 {
			worst = append(worst, time.Duration(k.OutageMsMax*float64(time.Millisecond)))
		}
	}
	med, mx := medianMax(worst)
	r.OutageMsMedian, r.OutageMsMax = ms(med), ms(mx)
	r.Met = len(worst) > 0 && r.NotRecovered == 0 && r.OutageMsMedian <= 1000*r.TargetSeconds
}

// fillOutages sets kill's PerShard to per and its summary from them: the median and
// maximum outage and the maximum gap over the recovered shards, and the shards that
// did not recover.
func (k *FailoverKill) fillOutages(per []ShardOutage) {
	k.PerShard = per
	var outages, gaps []time.Duration
	k.NotRecovered = nil
	for _, s := range per {
		if !s.Recovered {
			k.NotRecovered = append(k.NotRecovered, s.Shard)
			continue
		}
		outages = append(outages, time.Duration(s.OutageMs*float64(time.Millisecond)))
		gaps = append(gaps, time.Duration(s.GapMs*float64(time.Millisecond)))
	}
	med, mx := medianMax(outages)
	_, gmx := medianMax(gaps)
	k.OutageMsMedian, k.OutageMsMax, k.GapMsMax = ms(med), ms(mx), ms(gmx)
}

// RunFailover runs the failover benchmark: it starts the cluster, creates the topic,
// starts the fixed-rate load and measures Kills kills of a shard leader's node, each
// followed by a restart and a wait for a healthy cluster. On an error after the topic
// was created it returns the partial report too.
func RunFailover(ctx context.Context, fc FailoverConfig) (*FailoverReport, error) {
	if err := fc.Validate(); err != nil {
		return nil, err
	}
	cfg := fc.Config
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
		topic = "failover-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	rep := &FailoverReport{
		Started: time.Now(), Machine: describeMachine(), Topic: topic, Nodes: len(t.servers),
		Shards: fc.Shards, ReplicationFactor: fc.ReplicationFactor, RecordSize: fc.RecordSize, Rate: fc.Rate,
		ServerArgs: cfg.ServerArgs, Mode: fc.mode(), Signal: fc.Signal,
		SettleSeconds: fc.Settle.Seconds(), TimeoutSeconds: fc.Timeout.Seconds(), RequestTimeoutSeconds: fc.RequestTimeout.Seconds(),
		TargetSeconds: FailoverTargetSeconds, Kills: []FailoverKill{},
	}
	if fc.Idle {
		rep.IdleWaitSeconds, rep.ProbeIntervalMs, rep.ProbeTimeoutMs = fc.IdleWait.Seconds(), ms(fc.ProbeInterval), ms(fc.ProbeTimeout)
	}
	defer func() { rep.Seconds = time.Since(rep.Started).Seconds() }()
	r := &failoverRun{fc: fc, t: t, log: cfg.Logger, topic: topic, errs: &errorLog{}}
	err = r.run(ctx, rep)
	rep.summarize()
	rep.Errors, rep.ErrorMessages = r.errs.n.Load(), r.errs.messages()
	return rep, err
}

// signalText describes signal for the text report.
func signalText(signal string) string {
	if signal == SignalStop {
		return "SIGSTOP, SIGCONT after the measurement"
	}
	return "SIGKILL, restart after the measurement"
}

// WriteFailoverText prints r as a human-readable table.
func WriteFailoverText(w io.Writer, r *FailoverReport) {
	args := ""
	if len(r.ServerArgs) > 0 {
		args = ", server args " + strings.Join(r.ServerArgs, " ")
	}
	fmt.Fprintf(w, "failover   topic %s: %d shards, RF %d on %d nodes%s\n", r.Topic, r.Shards, r.ReplicationFactor, r.Nodes, args)
	fmt.Fprintf(w, "mode       %s, signal %s (%s)\n", r.Mode, r.Signal, signalText(r.Signal))
	if r.Mode == "idle" {
		fmt.Fprintf(w, "idle       no writes for %.1f s before each kill; one probe write per affected shard through the survivors, "+
			"an attempt every %.0f ms of at most %.0f ms, %.0f s timeout\n", r.IdleWaitSeconds, r.ProbeIntervalMs, r.ProbeTimeoutMs, r.TimeoutSeconds)
	} else {
		fmt.Fprintf(w, "load       %.0f records/s of %d B, %.1f s settle before each kill, %.0f s timeout, %.1f s request timeout\n",
			r.Rate, r.RecordSize, r.SettleSeconds, r.TimeoutSeconds, r.RequestTimeoutSeconds)
	}
	fmt.Fprintf(w, "machine    %d CPUs %s, %.1f GiB, %s\n", r.Machine.CPUs, r.Machine.CPUModel, float64(r.Machine.MemBytes)/(1<<30), r.Machine.OS)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "kill  node   shards            no write  outage max ms  outage median ms  gap max ms  leader ms  errors  failed RPCs  recover s")
	for i, k := range r.Kills {
		shards := make([]string, len(k.Shards))
		for j, s := range k.Shards {
			shards[j] = strconv.Itoa(s)
		}
		resumed := len(k.NotRecovered) < len(k.Shards)
		fmt.Fprintf(w, "%4d  %-5s  %-16s  %8d  %13s  %16s  %10s  %9s  %6d  %11d  %9.2f\n", i+1, k.Node, strings.Join(shards, ","),
			len(k.NotRecovered), msOrDash(k.OutageMsMax, resumed), msOrDash(k.OutageMsMedian, resumed),
			msOrDash(k.GapMsMax, resumed && r.Mode != "idle"), msOrDash(k.LeaderMs, k.LeaderError == ""),
			k.Errors, k.FailedRPCs, k.RecoverSeconds)
		writeShardOutages(w, r, k)
	}
	fmt.Fprintln(w)
	verdict := "misses"
	if r.Met {
		verdict = "meets"
	}
	fmt.Fprintf(w, "outage     worst affected shard per kill: median %.1f ms, max %.1f ms over %d kills (%s the <= %.1f s target)\n",
		r.OutageMsMedian, r.OutageMsMax, len(r.Kills)-killsNotRecovered(r), verdict, r.TargetSeconds)
	if r.NotRecovered > 0 {
		fmt.Fprintf(w, "NOT RECOVERED  %d shards took no write within %.0f s of the kill (listed above)\n", r.NotRecovered, r.TimeoutSeconds)
	}
	fmt.Fprintf(w, "records    %d acknowledged, %d errors\n", r.Acked, r.Errors)
	for _, m := range r.ErrorMessages {
		fmt.Fprintf(w, "           %s\n", m)
	}
	fmt.Fprintf(w, "took       %.1f s\n", r.Seconds)
}

// writeShardOutages prints kill k's per-shard lines, and why no new leader was seen.
func writeShardOutages(w io.Writer, r *FailoverReport, k FailoverKill) {
	for _, s := range k.PerShard {
		var tail string
		if s.Attempts > 0 {
			tail = fmt.Sprintf(", %d attempts", s.Attempts)
		}
		if s.LastError != "" {
			tail += ", last error: " + s.LastError
		}
		switch {
		case !s.Recovered:
			fmt.Fprintf(w, "        shard %d: no write acknowledged within %.0f s%s\n", s.Shard, r.TimeoutSeconds, tail)
		case r.Mode == "idle":
			fmt.Fprintf(w, "        shard %d: %.1f ms%s\n", s.Shard, s.OutageMs, tail)
		default:
			fmt.Fprintf(w, "        shard %d: %.1f ms (gap %.1f ms)\n", s.Shard, s.OutageMs, s.GapMs)
		}
	}
	if k.LeaderError != "" {
		fmt.Fprintf(w, "        leaders: %s\n", k.LeaderError)
	}
}

// msOrDash formats v with one decimal when ok, else as "-".
func msOrDash(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// killsNotRecovered counts r's kills with a shard that did not recover.
func killsNotRecovered(r *FailoverReport) int {
	n := 0
	for _, k := range r.Kills {
		if len(k.NotRecovered) > 0 {
			n++
		}
	}
	return n
}
