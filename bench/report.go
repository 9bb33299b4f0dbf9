package bench

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is the result of one `shardlog bench` run. Its JSON form is the --json output.
type Report struct {
	// Name labels the run (matrix runs); empty for a single run.
	Name string `json:"name,omitempty"`
	// Started is when the run began.
	Started time.Time `json:"started"`
	// Machine describes where the client ran.
	Machine Machine `json:"machine"`
	// Workload is the configuration measured; ServerArgs are the extra flags of the
	// servers the harness started.
	Workload   WorkloadInfo `json:"workload"`
	ServerArgs []string     `json:"server_args,omitempty"`
	// Produce, Consume and Servers are the measurements.
	Produce ProduceResult  `json:"produce"`
	Consume ConsumeResult  `json:"consume"`
	Servers []ServerResult `json:"servers"`
	// Errors counts records that failed to produce plus consumer and harness errors;
	// Retries counts batch resends by the producers.
	Errors  uint64 `json:"errors"`
	Retries uint64 `json:"retries"`
	// RPCErrors counts the producers' failed RPCs by gRPC status code (what the retries
	// were answers to).
	RPCErrors map[string]uint64 `json:"rpc_errors,omitempty"`
	// ErrorMessages holds the first few distinct error messages.
	ErrorMessages []string `json:"error_messages,omitempty"`
	// Baseline holds the --baseline measurements.
	Baseline *Baseline `json:"baseline,omitempty"`
}

// WorkloadInfo is the workload as reported.
type WorkloadInfo struct {
	Topic             string  `json:"topic"`
	Nodes             int     `json:"nodes"`
	Shards            int     `json:"shards"`
	ReplicationFactor int     `json:"replication_factor"`
	RecordSize        int     `json:"record_size"`
	Keys              string  `json:"keys"`
	Compressibility   float64 `json:"compressibility"`
	Compression       string  `json:"compression"`
	Producers         int     `json:"producers"`
	BatchSize         int     `json:"batch_size"`
	LingerMs          float64 `json:"linger_ms"`
	InFlight          int     `json:"inflight"`
	BufferBytes       int     `json:"buffer_bytes"`
	Consumers         int     `json:"consumers"`
	DurationSec       float64 `json:"duration_sec"`
	Records           int64   `json:"records"`
	// Rate is the fixed total send rate in records/s; 0 is a closed-loop run.
	Rate float64 `json:"rate"`
}

// ProduceResult measures the produce phase.
type ProduceResult struct {
	// Records and Bytes count acknowledged records and their payload (key+value) bytes.
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
	// WireBytes counts encoded (possibly compressed) batch bytes acknowledged.
	WireBytes uint64 `json:"wire_bytes"`
	Batches   uint64 `json:"batches"`
	// Seconds runs from the first send to the last acknowledgement.
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// LatencyMs is the acknowledgement latency: from Send (with --rate: from the
	// intended send time) to the record's callback.
	LatencyMs Latency `json:"latency_ms"`
	// TopicCreateSeconds is how long creating the topic took until every shard had a leader.
	TopicCreateSeconds float64 `json:"topic_create_seconds"`
}

// ConsumeResult measures consumption.
type ConsumeResult struct {
	// Records, Bytes and Seconds are for reading the backlog from offset 0 after the
	// produce phase.
	Records       uint64  `json:"records"`
	Bytes         uint64  `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// Complete is false when the backlog read stopped at its time bound.
	Complete bool `json:"complete"`
	// TailRecords counts records read by the consumers that tailed the topic during the
	// produce phase; E2ELatencyMs is their latency from send to arrival.
	TailRecords  uint64  `json:"tail_records"`
	E2ELatencyMs Latency `json:"e2e_latency_ms"`
}

// ServerResult is one server process's cost during the run.
type ServerResult struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
	// CPUSeconds is user+system CPU over the whole workload (produce and consume);
	// ProduceCPUSeconds over the produce phase only.
	CPUSeconds        float64 `json:"cpu_seconds"`
	ProduceCPUSeconds float64 `json:"produce_cpu_seconds"`
	// PeakRSSBytes is VmHWM at the end of the run; RSSBytes is VmRSS then.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	RSSBytes     int64 `json:"rss_bytes"`
}

// Baseline holds the comparison runs of --baseline.
type Baseline struct {
	// Segment is the segment store alone: the same encoded batches appended with
	// WriteBatch/Commit (no sync, as the state machine does) on a temporary directory.
	Segment *Throughput `json:"segment,omitempty"`
	// RF1 is the same workload at replication factor 1 (absent when the main run is RF 1).
	RF1 *Report `json:"rf1,omitempty"`
}

// Throughput is a plain rate measurement.
type Throughput struct {
	Records       uint64  `json:"records"`
	Bytes         uint64  `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
}

// Machine describes the client's machine.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemBytes  int64  `json:"mem_bytes,omitempty"`
	OS        string `json:"os"`
	GoVersion string `json:"go_version"`
}

// rate returns n/seconds, or 0 for an empty interval.
func rate(n uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// mb returns bytes in MB (10^6).
func mb(bytes float64) float64 { return bytes / 1e6 }

// ServerCPUSeconds returns the servers' total CPU seconds over the workload.
func (r *Report) ServerCPUSeconds() float64 {
	var s float64
	for _, sv := range r.Servers {
		s += sv.CPUSeconds
	}
	return s
}

// ProduceCPUSecondsPerGB returns the servers' CPU seconds during the produce phase per
// GB (10^9 payload bytes) produced, or 0 when unknown.
func (r *Report) ProduceCPUSecondsPerGB() float64 {
	if r.Produce.Bytes == 0 || len(r.Servers) == 0 {
		return 0
	}
	var s float64
	for _, sv := range r.Servers {
		s += sv.ProduceCPUSeconds
	}
	return s / (float64(r.Produce.Bytes) / 1e9)
}

// MaxPeakRSS returns the largest peak RSS of the servers.
func (r *Report) MaxPeakRSS() int64 {
	var m int64
	for _, sv := range r.Servers {
		m = max(m, sv.PeakRSSBytes)
	}
	return m
}

// describeMachine reads the client's machine description.
func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			var kb int64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemBytes = kb << 10
				break
			}
		}
	}
	return m
}

// WriteText prints r as a human-readable table.
func WriteText(w io.Writer, r *Report) {
	wl := r.Workload
	mode := "closed loop"
	if wl.Rate > 0 {
		mode = fmt.Sprintf("fixed rate %.0f records/s", wl.Rate)
	}
	fmt.Fprintf(w, "workload   topic %s: %d shards, RF %d on %d nodes; %d B records, keys %s, compressibility %.2f, compression %s\n",
		wl.Topic, wl.Shards, wl.ReplicationFactor, wl.Nodes, wl.RecordSize, wl.Keys, wl.Compressibility, wl.Compression)
	fmt.Fprintf(w, "           %d producers (batch %d B, linger %.1f ms, %d in flight), %d consumers, %s\n",
		wl.Producers, wl.BatchSize, wl.LingerMs, wl.InFlight, wl.Consumers, mode)
	if wl.BufferBytes > 0 {
		fmt.Fprintf(w, "           producer buffer %d B\n", wl.BufferBytes)
	}
	if len(r.ServerArgs) > 0 {
		fmt.Fprintf(w, "           server args %s\n", strings.Join(r.ServerArgs, " "))
	}
	fmt.Fprintf(w, "machine    %d CPUs %s, %.1f GiB, %s\n", r.Machine.CPUs, r.Machine.CPUModel, float64(r.Machine.MemBytes)/(1<<30), r.Machine.OS)
	fmt.Fprintln(w)
	writeMain(w, "", r)
	if b := r.Baseline; b != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "baseline                      records/s        MB/s")
		fmt.Fprintf(w, "  this run (RF %d)          %12.0f  %10.2f\n", wl.ReplicationFactor, r.Produce.RecordsPerSec, r.Produce.MBPerSec)
		if b.RF1 != nil {
			fmt.Fprintf(w, "  replication factor 1     %12.0f  %10.2f   ack p99 %.2f ms, consume %.0f records/s\n",
				b.RF1.Produce.RecordsPerSec, b.RF1.Produce.MBPerSec, b.RF1.Produce.LatencyMs.P99, b.RF1.Consume.RecordsPerSec)
		}
		if b.Segment != nil {
			fmt.Fprintf(w, "  segment store alone      %12.0f  %10.2f   (no Raft, no network, no sync)\n", b.Segment.RecordsPerSec, b.Segment.MBPerSec)
		}
	}
}

// writeMain prints the produce, consume and server sections.
func writeMain(w io.Writer, indent string, r *Report) {
	p, c := r.Produce, r.Consume
	l := p.LatencyMs
	fmt.Fprintf(w, "%sproduce    %12.0f records/s %10.2f MB/s   (%d records in %.2f s, %d batches, wire %.1f MB)\n",
		indent, p.RecordsPerSec, p.MBPerSec, p.Records, p.Seconds, p.Batches, mb(float64(p.WireBytes)))
	fmt.Fprintf(w, "%sack ms      p50 %8.2f   p99 %8.2f   p99.9 %8.2f   max %8.2f   mean %8.2f\n",
		indent, l.P50, l.P99, l.P999, l.Max, l.Mean)
	complete := ""
	if !c.Complete && c.Records > 0 {
		complete = "  (stopped at the time bound)"
	}
	fmt.Fprintf(w, "%sconsume    %12.0f records/s %10.2f MB/s   (backlog of %d records in %.2f s)%s\n",
		indent, c.RecordsPerSec, c.MBPerSec, c.Records, c.Seconds, complete)
	e := c.E2ELatencyMs
	fmt.Fprintf(w, "%se2e ms      p50 %8.2f   p99 %8.2f   p99.9 %8.2f   max %8.2f   (%d records tailed)\n",
		indent, e.P50, e.P99, e.P999, e.Max, c.TailRecords)
	fmt.Fprintf(w, "%stopic      created in %.2f s\n", indent, p.TopicCreateSeconds)
	fmt.Fprintf(w, "%serrors     %d   retries %d", indent, r.Errors, r.Retries)
	if len(r.RPCErrors) > 0 {
		fmt.Fprint(w, "   failed RPCs:")
		for _, k := range slices.Sorted(maps.Keys(r.RPCErrors)) {
			fmt.Fprintf(w, " %s=%d", k, r.RPCErrors[k])
		}
	}
	fmt.Fprintln(w)
	for _, m := range r.ErrorMessages {
		fmt.Fprintf(w, "%s           %s\n", indent, m)
	}
	if len(r.Servers) == 0 {
		fmt.Fprintf(w, "%sservers    not measured (not started by the harness)\n", indent)
		return
	}
	fmt.Fprintf(w, "%sserver     pid       cpu s   produce cpu s   peak RSS MiB\n", indent)
	for _, s := range r.Servers {
		fmt.Fprintf(w, "%s  %-6s %7d  %9.2f  %14.2f  %13.1f\n", indent, s.Name, s.PID, s.CPUSeconds, s.ProduceCPUSeconds, float64(s.PeakRSSBytes)/(1<<20))
	}
	if g := r.ProduceCPUSecondsPerGB(); g > 0 {
		fmt.Fprintf(w, "%scost       %.1f server CPU seconds per GB produced\n", indent, g)
	}
}
