package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/proto/shardlogv1"
)

// Special ConsumerOptions.Start values.
const (
	// StartEarliest starts each shard at its log start offset.
	StartEarliest = -2
	// StartLatest starts each shard at its end: only records appended later are read.
	StartLatest = -1
)

// Consumer defaults.
const (
	DefaultFetchMaxBytes       = 1 << 20
	DefaultFetchMaxWait        = 500 * time.Millisecond
	DefaultFetchRequestTimeout = 10 * time.Second
)

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	// Shards are the shard indexes to read; nil reads all of the topic's shards.
	Shards []uint32
	// Start is where every shard starts: StartEarliest (-2), StartLatest (-1) or an offset.
	Start int64
	// StartOffsets overrides Start for the shards it names.
	StartOffsets map[uint32]uint64
	// MaxBytes bounds one Fetch answer per shard. Default 1 MiB.
	MaxBytes int
	// MaxWait is how long a Fetch, and Poll, wait for new records. Default 500ms.
	MaxWait time.Duration
	// RequestTimeout bounds one Fetch beyond MaxWait, and one DescribeTopic that
	// resolves a position, so a node that stopped answering costs a retry, not a hang.
	// Default 10s.
	RequestTimeout time.Duration
	// LeaderAttemptTimeout bounds one Fetch sent straight to the shard's cached leader
	// beyond MaxWait (at most RequestTimeout), as ProducerOptions.LeaderAttemptTimeout.
	// Default 3s.
	LeaderAttemptTimeout time.Duration
	// Strict makes Poll fail with ErrOutOfRange when a shard's position is outside its
	// log (for example after retention dropped it); by default the position moves to the
	// nearest valid offset (the log start or end) and a warning is logged.
	Strict bool
}

// Record is one consumed record.
type Record struct {
	Shard     uint32
	Offset    uint64
	Key       []byte
	Value     []byte
	Headers   []batch.Header
	Timestamp time.Time
}

// fetched is one shard's answer handed from its fetcher to Poll.
type fetched struct {
	f    *fetcher
	recs []Record
	next uint64
	err  error
}

// Consumer reads records of one topic. Poll, Positions and Close may be called from
// different goroutines, but Poll is not meant to run concurrently with itself.
type Consumer struct {
	c      *Client
	routes *topicRoutes
	topic  string
	o      ConsumerOptions
	log    *slog.Logger
	ready  chan fetched
	cancel context.CancelFunc
	wg     sync.WaitGroup

	shards []uint32 // sorted

	mu       sync.Mutex
	pos      map[uint32]uint64     // next offset to return, per resolved shard
	err      error                 // sticky error of a stopped fetcher
	failures map[uint32]FetchError // shards whose last fetch (or resolve) failed
	closed   bool
}

// FetchError is a shard whose fetches keep failing (the consumer keeps retrying them).
type FetchError struct {
	// Since is when the current run of failures began.
	Since time.Time
	// Err is the last failure, a *ShardError.
	Err error
}

// fetcher long-polls one shard. Its goroutine owns pos and resolved.
type fetcher struct {
	k        *Consumer
	shard    uint32
	pos      uint64
	resolved bool
	resume   chan struct{} // Poll consumed the last answer
}

// NewConsumer starts reading topic. Shard positions named by Start are resolved now when
// the shards' leaders answer, else by the shard's fetcher once they do.
func (c *Client) NewConsumer(ctx context.Context, topic string, o ConsumerOptions) (*Consumer, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultFetchMaxBytes
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultFetchMaxWait
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultFetchRequestTimeout
	}
	if o.LeaderAttemptTimeout <= 0 {
		o.LeaderAttemptTimeout = DefaultLeaderAttemptTimeout
	}
	if o.Start < StartEarliest {
		return nil, fmt.Errorf("client: invalid start offset %d", o.Start)
	}
	info, err := c.DescribeTopic(ctx, topic, o.Start < 0)
	if err != nil {
		return nil, err
	}
	n := uint32(len(info.GetShards()))
	shards := o.Shards
	if shards == nil {
		for i := range n {
			shards = append(shards, i)
		}
	}
	fctx, cancel := context.WithCancel(context.Background())
	k := &Consumer{
		c: c, routes: c.routesFor(topic), topic: topic, o: o, cancel: cancel,
		log:      c.log.With("topic", topic),
		ready:    make(chan fetched, len(shards)),
		pos:      make(map[uint32]uint64, len(shards)),
		failures: make(map[uint32]FetchError),
	}
	k.shards = slices.Compact(slices.Sorted(slices.Values(shards)))
	var fetchers []*fetcher
	for _, s := range k.shards {
		if s >= n {
			cancel()
			return nil, fmt.Errorf("%w: %d (topic %q has %d shards)", ErrInvalidShard, s, topic, n)
		}
		f := &fetcher{k: k, shard: s, resume: make(chan struct{}, 1)}
		if off, ok := o.StartOffsets[s]; ok {
			f.pos, f.resolved = off, true
		} else {
			f.pos, f.resolved = startOffset(info.GetShards()[s], o.Start)
		}
		if f.resolved {
			k.pos[s] = f.pos
		}
		fetchers = append(fetchers, f)
	}
	k.routes.seed(info)
	for _, f := range fetchers {
		k.wg.Go(func() { f.run(fctx) })
	}
	return k, nil
}

// startOffset resolves start for one shard from DescribeTopic offsets.
func startOffset(si *shardlogv1.ShardInfo, start int64) (uint64, bool) {
	switch {
	case start >= 0:
		return uint64(start), true
	case si.GetStatusError() != "":
		return 0, false
	case start == StartEarliest:
		return si.GetFirstOffset(), true
	default:
		return si.GetNextOffset(), true
	}
}

// Poll returns the records available now, waiting up to MaxWait (or until ctx is done)
// for the first ones. Records of one shard come in offset order, across calls too. An
// empty result with a nil error means nothing arrived in time. After a shard fails for
// good (topic deleted, corrupt batch, strict out of range) Poll returns that error.
func (k *Consumer) Poll(ctx context.Context) ([]Record, error) {
	k.mu.Lock()
	closed, stuck := k.closed, k.err
	k.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	timer := time.NewTimer(k.o.MaxWait)
	defer timer.Stop()
	var out []Record
	select {
	case r := <-k.ready:
		out = k.take(r, out)
	case <-timer.C:
		return nil, stuck
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for more := true; more; {
		select {
		case r := <-k.ready:
			out = k.take(r, out)
		default:
			more = false
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return nil, k.err
}

// take accepts one fetcher answer and lets the fetcher go on.
func (k *Consumer) take(r fetched, out []Record) []Record {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.err != nil {
		if k.err == nil {
			k.err = r.err
		}
		return out
	}
	k.pos[r.f.shard] = r.next
	r.f.resume <- struct{}{}
	return append(out, r.recs...)
}

// Positions returns, per shard, the offset after the last record Poll returned (the
// start offset before any). Shards whose start could not be resolved yet are absent.
func (k *Consumer) Positions() map[uint32]uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.pos)
}

// FetchErrors returns the shards whose last Fetch (or position lookup) failed with an
// error the consumer retries, and since when they have been failing; a shard leaves the
// map at its next successful fetch. A shard that failed for good is Poll's error instead.
func (k *Consumer) FetchErrors() map[uint32]FetchError {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.failures)
}

// noteFetch records the outcome of one fetcher step for FetchErrors.
func (k *Consumer) noteFetch(shard uint32, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.failures, shard)
		return
	}
	f, ok := k.failures[shard]
	if !ok {
		f.Since = time.Now()
	}
	f.Err = k.shardError(shard, err)
	k.failures[shard] = f
}

// shardError names the topic and shard in err, and adds the cluster's view when its
// last DescribeTopic answer had no leader for the shard.
func (k *Consumer) shardError(shard uint32, err error) error {
	var se *ShardError
	if errors.As(err, &se) {
		return err
	}
	if k.routes.leaderless(shard) && !namesNoLeader(err) {
		err = fmt.Errorf("%w; %s", err, noLeaderNote)
	}
	return &ShardError{Topic: k.topic, Shard: shard, Err: err}
}

// Shards returns the shard indexes the consumer reads, sorted.
func (k *Consumer) Shards() []uint32 { return slices.Clone(k.shards) }

// Close stops the fetchers.
func (k *Consumer) Close() error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	k.wg.Wait()
	return nil
}

func (f *fetcher) run(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		err := f.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil || retryable(err) {
			f.k.noteFetch(f.shard, err)
		}
		if err == nil {
			attempt = 0
			continue
		}
		if !retryable(err) {
			f.k.noteFetch(f.shard, nil) // Poll reports it from now on
			f.fail(ctx, f.k.shardError(f.shard, err))
			return
		}
		attempt++
		sleep(ctx, backoff(attempt))
	}
}

// step resolves the position if needed and runs one Fetch, handing records to Poll.
func (f *fetcher) step(ctx context.Context) error {
	k := f.k
	if !f.resolved {
		return f.resolve(ctx, k.o.Start)
	}
	t := k.routes.target(f.shard)
	var md metadata.MD
	limit := k.o.RequestTimeout
	if t.leader {
		limit = min(limit, k.o.LeaderAttemptTimeout)
	}
	rctx, cancel := context.WithTimeout(ctx, k.o.MaxWait+limit)
	resp, err := shardlogv1.NewLogClient(t.cc).Fetch(rctx, &shardlogv1.FetchRequest{
		Topic: k.topic, Shard: f.shard, Offset: f.pos,
		MaxBytes: uint32(k.o.MaxBytes), MaxWaitMs: uint32(k.o.MaxWait / time.Millisecond),
	}, grpc.Header(&md))
	cancel()
	if ctx.Err() == nil {
		k.routes.observe(f.shard, t, md, err)
	}
	if status.Code(err) == codes.OutOfRange {
		if k.o.Strict {
			return fmt.Errorf("%w: shard %d offset %d: %w", ErrOutOfRange, f.shard, f.pos, err)
		}
		return f.resolve(ctx, StartEarliest)
	}
	if err != nil {
		return err
	}
	recs, next, err := decodeFetch(f.shard, f.pos, resp.GetBatches())
	if err != nil {
		return fmt.Errorf("client: shard %d offset %d: %w", f.shard, f.pos, err)
	}
	if len(recs) == 0 {
		return nil
	}
	select {
	case k.ready <- fetched{f: f, recs: recs, next: next}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-f.resume:
		f.pos = next
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// resolve sets pos from the shard's current offsets. An unresolved shard takes start; a
// resolved one that fell out of range moves to the nearest end of its log.
func (f *fetcher) resolve(ctx context.Context, start int64) error {
	rctx, cancel := context.WithTimeout(ctx, f.k.o.RequestTimeout)
	info, err := f.k.c.DescribeTopic(rctx, f.k.topic, true)
	cancel()
	if err != nil {
		return err
	}
	f.k.routes.update(info)
	if int(f.shard) >= len(info.GetShards()) {
		return fmt.Errorf("%w: %d", ErrInvalidShard, f.shard)
	}
	si := info.GetShards()[f.shard]
	if msg := si.GetStatusError(); msg != "" {
		return status.Error(codes.Unavailable, msg)
	}
	if !f.resolved {
		f.pos, _ = startOffset(si, start)
		f.resolved = true
		f.k.mu.Lock()
		f.k.pos[f.shard] = f.pos
		f.k.mu.Unlock()
		return nil
	}
	old := f.pos
	f.pos = min(max(f.pos, si.GetFirstOffset()), si.GetNextOffset())
	if f.pos == old {
		// The leader that answered Fetch disagrees with the one DescribeTopic asked
		// (leadership moved): retry after a backoff instead of spinning.
		return status.Errorf(codes.Unavailable, "shard %d offset %d out of range", f.shard, old)
	}
	f.k.log.Warn("consumer position out of range, reset", "shard", f.shard, "from", old, "to", f.pos,
		"first", si.GetFirstOffset(), "next", si.GetNextOffset())
	return nil
}

// fail hands a fatal error to Poll.
func (f *fetcher) fail(ctx context.Context, err error) {
	select {
	case f.k.ready <- fetched{f: f, err: err}:
	case <-ctx.Done():
	}
}

// decodeFetch turns stored batches into records at offsets >= pos (the first batch may
// start before pos) and returns the offset after the last one.
func decodeFetch(shard uint32, pos uint64, batches []*shardlogv1.StoredBatch) ([]Record, uint64, error) {
	var out []Record
	next := pos
	for _, sb := range batches {
		recs, err := batch.Decode(sb.GetData())
		if err != nil {
			return nil, pos, fmt.Errorf("batch at %d: %w", sb.GetBaseOffset(), err)
		}
		for i, r := range recs {
			off := sb.GetBaseOffset() + uint64(i)
			if off < next {
				continue
			}
			out = append(out, Record{
				Shard: shard, Offset: off, Key: r.Key, Value: r.Value, Headers: r.Headers,
				Timestamp: time.UnixMilli(r.Timestamp),
			})
			next = off + 1
		}
	}
	return out, next, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
