package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"shardlog/client"
	"shardlog/proto/shardlogv1"
)

// produceTally counts per-shard results of the produce command's callbacks.
type produceTally struct {
	mu       sync.Mutex
	ok       map[uint32]int
	failed   int
	firstErr error
}

func (t *produceTally) add(r client.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Err != nil {
		t.failed++
		if t.firstErr == nil {
			t.firstErr = r.Err
		}
		return
	}
	t.ok[r.Shard]++
}

func cmdProduce(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("produce", &g)
	key := fs.String("key", "", "key of every record (routes them all to one shard)")
	shard := fs.Int("shard", client.AnyShard, "shard of every record (-1 routes by key, or spreads keyless records)")
	maxLine := fs.Int("max-line-bytes", 1<<20, "longest accepted input line")
	compression := fs.String("compression", "", "batch codec (none, s2, zstd); empty uses the topic's")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	if *maxLine <= 0 {
		return usagef(fs.Name(), "--max-line-bytes must be positive")
	}
	return withClient(ctx, g, func(c *client.Client) error {
		var p *client.Producer
		err := g.call(ctx, func(ctx context.Context) (err error) {
			p, err = c.NewProducer(ctx, pos[0], client.ProducerOptions{Compression: *compression, RequestTimeout: g.timeout})
			return err
		})
		if err != nil {
			return err
		}
		start := time.Now()
		tally := &produceTally{ok: make(map[uint32]int)}
		readErr := produceLines(ctx, e.stdin, *maxLine, p, client.Message{Shard: *shard}, []byte(*key), tally.add)
		if err := p.Close(); err != nil && readErr == nil {
			readErr = err
		}
		elapsed := time.Since(start)
		tally.mu.Lock()
		defer tally.mu.Unlock()
		writeProduceSummary(e.stdout, tally.ok, elapsed)
		if readErr != nil {
			return readErr
		}
		if tally.failed > 0 {
			total := tally.failed
			for _, n := range tally.ok {
				total += n
			}
			return fmt.Errorf("%d of %d records failed: %w", tally.failed, total, tally.firstErr)
		}
		return nil
	})
}

// produceLines sends one record per line of r until EOF.
func produceLines(ctx context.Context, r io.Reader, maxLine int, p *client.Producer, tmpl client.Message, key []byte, cb func(client.Result)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(maxLine, 64<<10)), maxLine)
	line := 0
	for sc.Scan() {
		line++
		m := tmpl
		m.Value = slices.Clone(sc.Bytes())
		if len(key) > 0 {
			m.Key = key
		}
		if err := p.Send(ctx, m, cb); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d is longer than --max-line-bytes=%d", line+1, maxLine)
		}
		return fmt.Errorf("read stdin: %w", err)
	}
	return nil
}

func writeProduceSummary(w io.Writer, perShard map[uint32]int, elapsed time.Duration) {
	total := 0
	for _, n := range perShard {
		total += n
	}
	rate := float64(total) / max(elapsed.Seconds(), 1e-9)
	shards := "shards"
	if len(perShard) == 1 {
		shards = "shard"
	}
	fmt.Fprintf(w, "produced %d records to %d %s in %s (%.0f rec/s)\n",
		total, len(perShard), shards, elapsed.Round(time.Millisecond), rate)
	for _, s := range slices.Sorted(maps.Keys(perShard)) {
		fmt.Fprintf(w, "  shard %d: %d\n", s, perShard[s])
	}
}

// consumeOpts are the consume command's flags.
type consumeOpts struct {
	shard         int
	fromBeginning bool
	offset        int64
	max           int
	follow        bool
	format        string
	maxWait       time.Duration
}

func cmdConsume(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("consume", &g)
	var o consumeOpts
	fs.IntVar(&o.shard, "shard", -1, "read only this shard (-1 reads all)")
	fs.BoolVar(&o.fromBeginning, "from-beginning", false, "start at each shard's log start (the default without --follow)")
	fs.Int64Var(&o.offset, "offset", -1, "start at this offset")
	fs.IntVar(&o.max, "max", 0, "stop after this many records (0: no limit)")
	fs.BoolVar(&o.follow, "follow", false, "keep waiting for new records (starts at the end unless told otherwise)")
	fs.StringVar(&o.format, "format", "text", "text (the value per line) or json (one object per line)")
	fs.DurationVar(&o.maxWait, "max-wait", 500*time.Millisecond, "long-poll wait per fetch")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	switch {
	case o.fromBeginning && o.offset >= 0:
		return usagef(fs.Name(), "--from-beginning and --offset exclude each other")
	case o.format != "text" && o.format != "json":
		return usagef(fs.Name(), "--format must be text or json, got %q", o.format)
	case o.max < 0 || o.shard < -1:
		return usagef(fs.Name(), "--max and --shard must not be negative")
	}
	return withClient(ctx, g, func(c *client.Client) error { return consume(ctx, e, g, c, pos[0], o) })
}

func consume(ctx context.Context, e *env, g globals, c *client.Client, topic string, o consumeOpts) error {
	co := client.ConsumerOptions{Start: client.StartEarliest, MaxWait: o.maxWait}
	switch {
	case o.offset >= 0:
		co.Start = o.offset
	case o.follow && !o.fromBeginning:
		co.Start = client.StartLatest
	}
	if o.shard >= 0 {
		co.Shards = []uint32{uint32(o.shard)}
	}
	var ends map[uint32]uint64 // without --follow: stop at the end offsets seen now
	if !o.follow {
		var info *shardlogv1.TopicInfo
		err := g.call(ctx, func(ctx context.Context) (err error) {
			info, err = c.DescribeTopic(ctx, topic, true)
			return err
		})
		if err != nil {
			return err
		}
		if ends, err = endOffsets(info, co.Shards); err != nil {
			return err
		}
	}
	var k *client.Consumer
	err := g.call(ctx, func(ctx context.Context) (err error) {
		k, err = c.NewConsumer(ctx, topic, co)
		return err
	})
	if err != nil {
		return err
	}
	defer k.Close()
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	printed := 0
	for !reachedEnds(k.Positions(), ends) {
		recs, err := k.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil && o.follow {
				return nil // interrupted
			}
			return err
		}
		for _, r := range recs {
			if end, ok := ends[r.Shard]; ok && r.Offset >= end {
				continue
			}
			if err := writeRecord(out, o.format, r); err != nil {
				return err
			}
			if printed++; o.max > 0 && printed >= o.max {
				return nil
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// endOffsets returns the next offset of each consumed shard.
func endOffsets(info *shardlogv1.TopicInfo, shards []uint32) (map[uint32]uint64, error) {
	ends := make(map[uint32]uint64)
	for _, sh := range info.GetShards() {
		if shards != nil && !slices.Contains(shards, sh.GetIndex()) {
			continue
		}
		if msg := sh.GetStatusError(); msg != "" {
			return nil, fmt.Errorf("shard %d: %s", sh.GetIndex(), msg)
		}
		ends[sh.GetIndex()] = sh.GetNextOffset()
	}
	return ends, nil
}

// reachedEnds reports whether every shard with an end is positioned at or past it;
// nil ends (--follow) never end.
func reachedEnds(positions, ends map[uint32]uint64) bool {
	if ends == nil {
		return false
	}
	for s, end := range ends {
		if p, ok := positions[s]; !ok || p < end {
			return false
		}
	}
	return true
}

// jsonRecord is the consume --format json line.
type jsonRecord struct {
	Shard     uint32       `json:"shard"`
	Offset    uint64       `json:"offset"`
	Key       string       `json:"key"`
	Value     string       `json:"value"`
	Timestamp string       `json:"timestamp"`
	Headers   []jsonHeader `json:"headers"`
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func writeRecord(w *bufio.Writer, format string, r client.Record) error {
	if format == "text" {
		_, _ = w.Write(r.Value)
		return w.WriteByte('\n')
	}
	jr := jsonRecord{
		Shard: r.Shard, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value),
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano), Headers: []jsonHeader{},
	}
	for _, h := range r.Headers {
		jr.Headers = append(jr.Headers, jsonHeader{Key: h.Key, Value: string(h.Value)})
	}
	b, err := json.Marshal(jr)
	if err != nil {
		return err
	}
	_, _ = w.Write(b)
	return w.WriteByte('\n')
}
