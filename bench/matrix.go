package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MatrixConfig is the standard matrix: every record size × replication factor × shard
// count in closed loop, then for every record size a fixed-rate run at LatencyFraction
// of the peak measured with LatencyShards shards at the largest replication factor.
type MatrixConfig struct {
	// Config holds the cluster settings and the base workload of every run.
	Config Config
	// RecordSizes, ShardCounts and ReplicationFactors span the matrix.
	RecordSizes, ShardCounts, ReplicationFactors []int
	// LatencyShards and LatencyFraction shape the fixed-rate latency runs.
	LatencyShards   int
	LatencyFraction float64
	// Repeat runs every cell this many times; the table shows the median by produce
	// records/s.
	Repeat int
	// Out is the directory for the JSON files and matrix.md; "" writes none.
	Out string
	// Doc is a markdown file whose block between DocBegin and DocEnd is replaced by
	// the matrix table (docs/performance.md for make bench); "" writes none.
	Doc string
	// Command is the command line recorded in the markdown.
	Command string
}

// MatrixRun is one cell of the matrix with its runs.
type MatrixRun struct {
	Name string `json:"name"`
	// Median is the run shown in the table; Runs are all repeats.
	Median *Report    `json:"median,omitempty"`
	Runs   []*Report  `json:"runs,omitempty"`
	Error  string     `json:"error,omitempty"`
	cell   matrixCell // what was run
}

// MatrixResult is the whole matrix.
type MatrixResult struct {
	Started  time.Time              `json:"started"`
	Machine  Machine                `json:"machine"`
	Command  string                 `json:"command"`
	Runs     []*MatrixRun           `json:"runs"`
	Segment  map[string]*Throughput `json:"segment_baseline,omitempty"`
	Duration float64                `json:"duration_sec"`
}

type matrixCell struct {
	size, shards, rf int
	rate             float64
}

func (c matrixCell) name() string {
	if c.rate > 0 {
		return fmt.Sprintf("latency-%dB-%dshards-rf%d-rate%.0f", c.size, c.shards, c.rf, c.rate)
	}
	return fmt.Sprintf("produce-%dB-%dshards-rf%d", c.size, c.shards, c.rf)
}

// RunMatrix runs the matrix on one cluster (started unless Config.Servers is set). A
// failed cell is recorded in its MatrixRun and the matrix goes on.
func RunMatrix(ctx context.Context, mc MatrixConfig) (*MatrixResult, error) {
	if err := mc.Config.Workload.Validate(); err != nil {
		return nil, err
	}
	mc.Repeat = max(mc.Repeat, 1)
	if mc.Config.Logger == nil {
		mc.Config.Logger = slog.Default()
	}
	if mc.Out != "" {
		if err := os.MkdirAll(mc.Out, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	t, err := connect(ctx, mc.Config)
	if err != nil {
		return nil, err
	}
	defer t.close()
	m := &matrixRunner{mc: mc, t: t, log: mc.Config.Logger, nodes: max(len(t.servers), len(t.addrs)),
		res: &MatrixResult{Started: time.Now(), Machine: describeMachine(), Command: mc.Command}}
	m.runGrid(ctx)
	if mc.Config.Baseline {
		m.segmentBaselines(ctx)
	}
	m.res.Duration = time.Since(m.res.Started).Seconds()
	if err := m.writeOutputs(); err != nil {
		return m.res, err
	}
	return m.res, ctx.Err()
}

// matrixRunner runs one matrix against a connected target, collecting into res.
type matrixRunner struct {
	mc    MatrixConfig
	t     *target
	log   *slog.Logger
	nodes int
	res   *MatrixResult
}

// runGrid runs every closed-loop cell, then for every record size the fixed-rate
// latency cell at LatencyFraction of the peak of its (LatencyShards, largest RF) cell,
// measuring that peak first when the grid did not contain the cell.
func (m *matrixRunner) runGrid(ctx context.Context) {
	mc := m.mc
	maxRF := slices.Max(mc.ReplicationFactors)
	peaks := map[int]float64{}
	for _, size := range mc.RecordSizes {
		for _, rf := range mc.ReplicationFactors {
			for _, shards := range mc.ShardCounts {
				mr := m.runCell(ctx, matrixCell{size: size, shards: shards, rf: rf})
				if mr.Median != nil && shards == mc.LatencyShards && rf == maxRF {
					peaks[size] = mr.Median.Produce.RecordsPerSec
				}
			}
		}
	}
	for _, size := range mc.RecordSizes {
		peak, ok := peaks[size]
		if !ok {
			peak = m.runCell(ctx, matrixCell{size: size, shards: mc.LatencyShards, rf: maxRF}).peak()
		}
		if r := peak * mc.LatencyFraction; r >= 1 {
			m.runCell(ctx, matrixCell{size: size, shards: mc.LatencyShards, rf: maxRF, rate: float64(int(r))})
		}
	}
}

// runCell runs one cell Repeat times, writes each run's JSON under Out and records
// the cell with its median; a failed run ends the cell with its error.
func (m *matrixRunner) runCell(ctx context.Context, c matrixCell) *MatrixRun {
	mc, log := m.mc, m.log
	mr := &MatrixRun{Name: c.name(), cell: c}
	m.res.Runs = append(m.res.Runs, mr)
	if c.rf > m.nodes {
		mr.Error = fmt.Sprintf("replication factor %d exceeds the %d nodes", c.rf, m.nodes)
		return mr
	}
	w := mc.Config.Workload
	w.RecordSize, w.Shards, w.ReplicationFactor, w.Rate = c.size, c.shards, c.rf, c.rate
	for i := range mc.Repeat {
		if ctx.Err() != nil {
			mr.Error = ctx.Err().Error()
			return mr
		}
		log.Info("matrix run", "name", mr.Name, "repeat", i+1)
		topic := fmt.Sprintf("bench-%s-%d-%s", mr.Name, i+1, strconv.FormatInt(time.Now().UnixNano(), 36))
		rep, err := m.t.run(ctx, w, topic, mc.Config.Keep)
		if err != nil {
			mr.Error = err.Error()
			log.Warn("matrix run failed", "name", mr.Name, "err", err)
			return mr
		}
		rep.Name = mr.Name
		mr.Runs = append(mr.Runs, rep)
		if mc.Out != "" {
			name := mr.Name
			if mc.Repeat > 1 {
				name += fmt.Sprintf("-r%d", i+1)
			}
			if err := writeJSON(filepath.Join(mc.Out, name+".json"), rep); err != nil {
				log.Warn("writing a result", "err", err)
			}
		}
		log.Info("matrix result", "name", mr.Name, "records_per_sec", int(rep.Produce.RecordsPerSec),
			"mb_per_sec", fmt.Sprintf("%.1f", rep.Produce.MBPerSec), "p99_ms", rep.Produce.LatencyMs.P99)
	}
	mr.Median = median(mr.Runs)
	return mr
}

// segmentBaselines measures the segment store alone for every record size.
func (m *matrixRunner) segmentBaselines(ctx context.Context) {
	m.res.Segment = map[string]*Throughput{}
	for _, size := range m.mc.RecordSizes {
		w := m.mc.Config.Workload
		w.RecordSize, w.Shards = size, m.mc.LatencyShards
		m.log.Info("segment baseline", "record_size", size)
		if seg, err := SegmentBaseline(ctx, w, m.mc.Config.Dir); err == nil {
			m.res.Segment[fmt.Sprintf("%dB", size)] = seg
		} else {
			m.log.Warn("segment baseline failed", "err", err)
		}
	}
}

// writeOutputs writes matrix.json and matrix.md under Out and the table into Doc,
// each when set.
func (m *matrixRunner) writeOutputs() error {
	if out := m.mc.Out; out != "" {
		if err := writeJSON(filepath.Join(out, "matrix.json"), m.res); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(out, "matrix.md"))
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		WriteMarkdown(f, m.res)
		if err := f.Close(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	if m.mc.Doc != "" {
		return updateDoc(m.mc.Doc, m.res)
	}
	return nil
}

func (mr *MatrixRun) peak() float64 {
	if mr.Median == nil {
		return 0
	}
	return mr.Median.Produce.RecordsPerSec
}

// median returns the median run (the lower middle of an even count), or nil for none:
// by produce records/s for closed-loop runs, and by ack p99 for fixed-rate runs, whose
// throughput is the rate and whose point is the latency.
func median(runs []*Report) *Report {
	if len(runs) == 0 {
		return nil
	}
	key := func(r *Report) float64 { return r.Produce.RecordsPerSec }
	if runs[0].Workload.Rate > 0 {
		key = func(r *Report) float64 { return r.Produce.LatencyMs.P99 }
	}
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b *Report) int { return cmp.Compare(key(a), key(b)) })
	return s[(len(s)-1)/2]
}

// DocBegin and DocEnd mark the block of a markdown file that --doc replaces.
const (
	DocBegin = "<!-- bench-matrix:begin -->"
	DocEnd   = "<!-- bench-matrix:end -->"
)

// updateDoc replaces the marked block of the markdown file at path with res's table.
func updateDoc(path string, res *MatrixResult) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bench: --doc: %w", err)
	}
	var table strings.Builder
	WriteMarkdown(&table, res)
	out, err := replaceBlock(string(doc), table.String())
	if err != nil {
		return fmt.Errorf("bench: --doc %s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// replaceBlock returns doc with the text between DocBegin and DocEnd replaced by body.
func replaceBlock(doc, body string) (string, error) {
	i := strings.Index(doc, DocBegin)
	j := strings.Index(doc, DocEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %s ... %s block", DocBegin, DocEnd)
	}
	return doc[:i+len(DocBegin)] + "\n" + strings.TrimRight(body, "\n") + "\n" + doc[j:], nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// WriteMarkdown prints the matrix as a markdown table, with the machine and command.
func WriteMarkdown(w io.Writer, res *MatrixResult) {
	m := res.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %.0f GiB RAM, %s, %s. Started %s, took %.0f s.\n\n",
		m.CPUs, m.CPUModel, float64(m.MemBytes)/(1<<30), m.OS, m.GoVersion, res.Started.UTC().Format(time.RFC3339), res.Duration)
	fmt.Fprintf(w, "Command: `%s`\n\n", strings.TrimSpace(res.Command))
	fmt.Fprintln(w, "| run | record B | shards | RF | rate rec/s | produce rec/s | produce MB/s | ack p50 ms | ack p99 ms | ack p99.9 ms | ack max ms | e2e p99 ms | consume rec/s | consume MB/s | server CPU s/GB | peak RSS MiB | errors/retries |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, mr := range res.Runs {
		c := mr.cell
		rateCol := "max"
		if c.rate > 0 {
			rateCol = fmt.Sprintf("%.0f", c.rate)
		}
		if mr.Median == nil {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %s | failed: %s |||||||||||\n", mr.Name, c.size, c.shards, c.rf, rateCol, mr.Error)
			continue
		}
		r := mr.Median
		p, cs := r.Produce, r.Consume
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.1f | %.0f | %d/%d |\n",
			mr.Name, c.size, c.shards, c.rf, rateCol, p.RecordsPerSec, p.MBPerSec,
			p.LatencyMs.P50, p.LatencyMs.P99, p.LatencyMs.P999, p.LatencyMs.Max, cs.E2ELatencyMs.P99,
			cs.RecordsPerSec, cs.MBPerSec, r.ProduceCPUSecondsPerGB(), float64(r.MaxPeakRSS())/(1<<20), r.Errors, r.Retries)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "MB/s counts key+value bytes (10^6). Ack latency runs from Send (fixed-rate runs: from the intended send time) to the acknowledgement;")
	fmt.Fprintln(w, "e2e from send to a tailing consumer. Consume is the backlog read from offset 0 after producing. Server CPU s/GB is the servers'")
	fmt.Fprintln(w, "CPU during the produce phase per GB produced; peak RSS is the largest server VmHWM at the end of the run (the matrix reuses one")
	fmt.Fprintln(w, "cluster, so it is the peak so far). Retries are batch resends by the client.")
	if len(res.Segment) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| segment store alone (no Raft, no network, no sync) | records/s | MB/s |")
		fmt.Fprintln(w, "|---|---:|---:|")
		for _, k := range slices.Sorted(maps.Keys(res.Segment)) {
			s := res.Segment[k]
			fmt.Fprintf(w, "| %s records | %.0f | %.2f |\n", k, s.RecordsPerSec, s.MBPerSec)
		}
	}
}
