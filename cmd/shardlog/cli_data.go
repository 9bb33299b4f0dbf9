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

// produceOpts are the produce command's flags.
type produceOpts struct {
	key, compression string
	shard, maxLine   int
	delivery         time.Duration
}

func cmdProduce(ctx context.Context, e *env, g globals, args []string) error {
	fs := newFlags("produce", &g)
	var o produceOpts
	fs.StringVar(&o.key, "key", "", "key of every record (routes them all to one shard)")
	fs.IntVar(&o.shard, "shard", -1, "shard of every record (-1 routes by key, or spreads keyless records)")
	fs.IntVar(&o.maxLine, "max-line-bytes", 1<<20, "longest accepted input line")
	fs.StringVar(&o.compression, "compression", "", "batch codec (none, s2, zstd); empty uses the topic's")
	fs.DurationVar(&o.delivery, "delivery-timeout", 0, "how long a record may wait for its acknowledgement, retries included,\n"+
		"before produce reports it failed (0: the --timeout value; the Go client's default is 2m)")
	pos, err := parse(e, fs, args, 1)
	if err != nil {
		return err
	}
	switch {
	case o.maxLine <= 0:
		return usagef(fs.Name(), "--max-line-bytes must be positive")
	case o.delivery < 0:
		return usagef(fs.Name(), "--delivery-timeout must not be negative")
	case o.shard < -1:
		return usagef(fs.Name(), "--shard %d: want -1 (by key) or a shard index", o.shard)
	case o.delivery == 0:
		o.delivery = g.timeout
	}
	return withClient(ctx, e, g, func(c *client.Client) error { return produce(ctx, e, g, c, pos[0], o) })
}

func produce(ctx context.Context, e *env, g globals, c *client.Client, topic string, o produceOpts) error {
	var p *client.Producer
	err := g.call(ctx, func(ctx context.Context) (err error) {
		p, err = c.NewProducer(ctx, topic, client.ProducerOptions{
			Compression: o.compression, RequestTimeout: g.timeout, DeliveryTimeout: o.delivery,
		})
		return err
	})
	if err != nil {
		return err
	}
	start := time.Now()
	tally := &produceTally{ok: make(map[uint32]int)}
	var tmpl client.Message
	if o.shard >= 0 {
		tmpl.Shard = client.ToShard(uint32(o.shard))
	}
	readErr := produceLines(ctx, e.stdin, o.maxLine, p, tmpl, []byte(o.key), tally.add)
	// On a signal CloseContext gives up at once: records not acknowledged by then
	// fail with ErrAborted and are counted below.
	if err := p.CloseContext(ctx); err != nil && readErr == nil {
		readErr = err
	}
	elapsed := time.Since(start)
	tally.mu.Lock()
	defer tally.mu.Unlock()
	writeProduceSummary(e.stdout, tally.ok, elapsed)
	acked := 0
	for _, n := range tally.ok {
		acked += n
	}
	if i := interruption(ctx); i != nil {
		return &interruptError{by: i, detail: fmt.Sprintf("%d records acknowledged, %d not acknowledged (may or may not be written)", acked, tally.failed)}
	}
	if readErr != nil {
		return readErr
	}
	if tally.failed > 0 {
		return fmt.Errorf("%d of %d records not acknowledged; first error: %w", tally.failed, acked+tally.failed, tally.firstErr)
	}
	return nil
}

// produceLines sends one record per line of r until EOF or until ctx ends. The lines
// are read by another goroutine, so a read that blocks (a terminal, a pipe nobody
// writes to) cannot hold produce past a signal.
func produceLines(ctx context.Context, r io.Reader, maxLine int, p *client.Producer, tmpl client.Message, key []byte, cb func(client.Result)) error {
	lines := make(chan []byte, 256)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go scanLines(r, maxLine, lines, readErr, stop)
	for line := 1; ; line++ {
		var v []byte
		var ok bool
		select {
		case v, ok = <-lines:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return <-readErr
		}
		m := tmpl
		m.Value = v
		if len(key) > 0 {
			m.Key = key
		}
		if err := p.Send(ctx, m, cb); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
}

// scanLines sends each line of r to lines until EOF, an error or stop; it puts the
// error (nil at EOF) in errc before closing lines.
func scanLines(r io.Reader, maxLine int, lines chan<- []byte, errc chan<- error, stop <-chan struct{}) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(maxLine, 64<<10)), maxLine)
	line := 0
	for sc.Scan() {
		line++
		select {
		case lines <- slices.Clone(sc.Bytes()):
		case <-stop:
			errc <- nil
			return
		}
	}
	err := sc.Err()
	switch {
	case errors.Is(err, bufio.ErrTooLong):
		err = fmt.Errorf("line %d is longer than --max-line-bytes=%d", line+1, maxLine)
	case err != nil:
		err = fmt.Errorf("read stdin: %w", err)
	}
	errc <- err
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
	fs.BoolVar(&o.follow, "follow", false, "keep waiting for new records (starts at the end unless told otherwise);\n"+
		"a shard whose fetches fail for --timeout is reported on stderr and retried")
	fs.StringVar(&o.format, "format", "text", "text (the value per line) or json (one object per line)")
	fs.DurationVar(&o.maxWait, "max-wait", 500*time.Millisecond, "long-poll wait per fetch (a fetch gives up after --max-wait plus --timeout)")
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
	return withClient(ctx, e, g, func(c *client.Client) error { return consume(ctx, e, g, c, pos[0], o) })
}

func consume(ctx context.Context, e *env, g globals, c *client.Client, topic string, o consumeOpts) error {
	co := client.ConsumerOptions{Start: client.StartEarliest, MaxWait: o.maxWait, RequestTimeout: g.timeout}
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
		if ends, err = endOffsets(topic, info, co.Shards); err != nil {
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
	w := newStallWatch(e, topic, g.timeout, ends)
	for !reachedEnds(k.Positions(), ends) {
		recs, err := k.Poll(ctx)
		if err != nil {
			if i := interruption(ctx); i != nil {
				return &interruptError{by: i, detail: fmt.Sprintf("%d records printed", printed)}
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
		if err := w.check(k.Positions(), k.FetchErrors()); err != nil {
			return err
		}
	}
	return nil
}

// stallWatch keeps consume from waiting silently on a shard that makes no progress.
// Without --follow (ends set) a shard short of its end offset that has returned no
// record for the timeout fails the command; with --follow, a shard whose fetches have
// failed for the timeout gets one warning line per outage and is still retried.
type stallWatch struct {
	e       *env
	topic   string
	timeout time.Duration
	ends    map[uint32]uint64
	last    map[uint32]uint64    // position at the last progress
	since   map[uint32]time.Time // time of the last progress
	warned  map[uint32]time.Time // Since of the outage already warned about
}

func newStallWatch(e *env, topic string, timeout time.Duration, ends map[uint32]uint64) *stallWatch {
	w := &stallWatch{e: e, topic: topic, timeout: timeout, ends: ends,
		last: map[uint32]uint64{}, since: map[uint32]time.Time{}, warned: map[uint32]time.Time{}}
	now := time.Now()
	for s := range ends {
		w.since[s] = now
	}
	return w
}

func (w *stallWatch) check(positions map[uint32]uint64, failing map[uint32]client.FetchError) error {
	now := time.Now()
	if w.ends == nil {
		for _, s := range slices.Sorted(maps.Keys(failing)) {
			fe := failing[s]
			if now.Sub(fe.Since) >= w.timeout && !w.warned[s].Equal(fe.Since) {
				w.warned[s] = fe.Since
				fmt.Fprintf(w.e.stderr, "shardlog: still retrying after %s: %s\n", now.Sub(fe.Since).Round(time.Millisecond), errorLine(fe.Err))
			}
		}
		return nil
	}
	for _, s := range slices.Sorted(maps.Keys(w.ends)) {
		p, ok := positions[s]
		if ok && p >= w.ends[s] {
			continue
		}
		if ok && p != w.last[s] {
			w.last[s], w.since[s] = p, now
			continue
		}
		if now.Sub(w.since[s]) < w.timeout {
			continue
		}
		msg := fmt.Sprintf("shard %d of topic %s: no records for %s (--timeout) at offset %d, end offset %d",
			s, w.topic, w.timeout, p, w.ends[s])
		if !ok {
			msg = fmt.Sprintf("shard %d of topic %s: start offset not found within %s (--timeout)", s, w.topic, w.timeout)
		}
		if fe, ok := failing[s]; ok {
			var se *client.ShardError
			if errors.As(fe.Err, &se) {
				return fmt.Errorf("%s: %w", msg, se.Err)
			}
			return fmt.Errorf("%s: %w", msg, fe.Err)
		}
		return errors.New(msg)
	}
	return nil
}

// endOffsets returns the next offset of each consumed shard.
func endOffsets(topic string, info *shardlogv1.TopicInfo, shards []uint32) (map[uint32]uint64, error) {
	ends := make(map[uint32]uint64)
	for _, sh := range info.GetShards() {
		if shards != nil && !slices.Contains(shards, sh.GetIndex()) {
			continue
		}
		if msg := sh.GetStatusError(); msg != "" {
			return nil, fmt.Errorf("shard %d of topic %s: %s", sh.GetIndex(), topic, msg)
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
