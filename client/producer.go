package client

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"shardlog/batch"
)

// ShardChoice is the shard a Message goes to. The zero value routes by key: FNV-1a 32
// of the key modulo the shard count (ShardForKey), and without a key a sticky shard
// that moves on whenever its batch is sealed. ToShard picks one shard by its index.
type ShardChoice struct {
	index uint32
	set   bool
}

// ToShard targets the shard with index i (0-based); Send rejects an index outside the
// topic with ErrInvalidShard.
func ToShard(i uint32) ShardChoice { return ShardChoice{index: i, set: true} }

// Index returns the chosen shard index, and false when the record is routed by key.
func (s ShardChoice) Index() (uint32, bool) { return s.index, s.set }

// String is the index, or "by key".
func (s ShardChoice) String() string {
	if !s.set {
		return "by key"
	}
	return strconv.FormatUint(uint64(s.index), 10)
}

// Producer defaults and limits.
const (
	DefaultBatchBytes      = 256 << 10
	DefaultBatchRecords    = 10000
	DefaultLinger          = 5 * time.Millisecond
	DefaultMaxInFlight     = 5
	MaxMaxInFlight         = 16
	DefaultDeliveryTimeout = 2 * time.Minute
	DefaultRequestTimeout  = 10 * time.Second
	// DefaultLeaderAttemptTimeout bounds a call sent straight to a shard's cached leader.
	DefaultLeaderAttemptTimeout = 3 * time.Second
	DefaultMaxBufferedBytes     = 64 << 20
)

// recordOverhead approximates the per-record framing bytes of an encoded batch, so that
// BatchBytes and MaxBufferedBytes count small records fairly.
const recordOverhead = 24

// ProducerOptions configures a Producer. Zero values take the defaults.
type ProducerOptions struct {
	// BatchBytes seals a shard's batch once its records reach this many bytes
	// (uncompressed). A single larger record still goes out, alone. Default 256 KiB.
	BatchBytes int
	// BatchRecords seals a batch at this many records. Default 10000.
	BatchRecords int
	// Linger is how long an open batch waits for more records before it is sealed.
	// Default 5ms; negative seals every record at once.
	Linger time.Duration
	// MaxInFlight is the number of batches per shard sent and not yet acknowledged.
	// Default 5, at most 16 (larger values are clamped).
	MaxInFlight int
	// Compression is the batch codec: "none", "s2" or "zstd"; "" uses the topic's.
	Compression string
	// DeliveryTimeout bounds the time from Send to acknowledgement, retries included;
	// after it the record's callback reports ErrDeliveryTimeout. Default 2m (as Kafka's
	// delivery.timeout.ms); interactive tools want a shorter one.
	DeliveryTimeout time.Duration
	// RequestTimeout bounds one Produce RPC (and never runs past DeliveryTimeout).
	// Default 10s.
	RequestTimeout time.Duration
	// LeaderAttemptTimeout bounds one Produce sent straight to the shard's cached leader
	// (at most RequestTimeout). A leader that hangs (SIGSTOP, a cut link) then costs this
	// long, not RequestTimeout: the retry goes through another node, which routes around
	// a node gossip reports failed. A healthy leader answers in milliseconds; the retry
	// of a slow one is deduplicated. Default 3s.
	LeaderAttemptTimeout time.Duration
	// MaxBufferedBytes bounds the bytes of records sent and not yet called back; Send
	// blocks while it is reached. Default 64 MiB.
	MaxBufferedBytes int
}

func (o *ProducerOptions) ensureDefaults() {
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = DefaultBatchRecords
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	o.MaxInFlight = min(o.MaxInFlight, MaxMaxInFlight)
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.LeaderAttemptTimeout <= 0 {
		o.LeaderAttemptTimeout = DefaultLeaderAttemptTimeout
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
}

// Message is one record to produce.
type Message struct {
	Key, Value []byte
	Headers    []batch.Header
	// Timestamp is the record's time; zero means the time of Send.
	Timestamp time.Time
	// Shard is the target shard; the zero value routes by key (see ShardChoice).
	Shard ShardChoice
}

// Result is the outcome of one record: its shard and offset, or Err.
type Result struct {
	Shard  uint32
	Offset uint64
	Err    error
}

// ProducerStats are counters since the producer was created.
type ProducerStats struct {
	// Records and Batches count acknowledged records and batches.
	Records, Batches uint64
	// Bytes counts encoded bytes of acknowledged batches.
	Bytes uint64
	// Retries counts batch resends; Duplicates counts resends the server had applied.
	Retries, Duplicates uint64
	// Errors counts records whose callback reported an error.
	Errors uint64
}

type producerCounters struct {
	records, batches, bytes, retries, duplicates, errors atomic.Uint64
}

// Producer sends records to one topic. It is safe for concurrent use.
type Producer struct {
	c      *Client
	routes *topicRoutes
	topic  string
	shards uint32
	codec  batch.Codec
	o      ProducerOptions
	log    *slog.Logger
	stats  producerCounters

	senders   []*shardSender
	wg        sync.WaitGroup
	rpcCtx    context.Context // parent of every Produce RPC; canceled by an abort
	rpcCancel context.CancelFunc

	mu          sync.Mutex // guards the fields below; lock order: mu, then shardSender.qmu
	closed      bool
	open        []*producerBatch // per shard: the batch records are appended to, or nil
	sticky      uint32           // shard of keyless records routed by key
	buffered    int              // bytes of records accepted and not yet called back
	outstanding int              // records accepted and not yet called back
	space       chan struct{}
	idle        chan struct{} // closed while outstanding == 0
}

// NewProducer returns a producer for topic. It reads the topic's shard count and
// compression from the cluster.
func (c *Client) NewProducer(ctx context.Context, topic string, o ProducerOptions) (*Producer, error) {
	info, err := c.DescribeTopic(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	shards := uint32(len(info.GetShards()))
	if shards == 0 {
		shards = info.GetSpec().GetShards()
	}
	if shards == 0 {
		return nil, fmt.Errorf("%w: topic %q has no shards", ErrInvalidShard, topic)
	}
	o.ensureDefaults()
	comp := o.Compression
	if comp == "" {
		comp = info.GetSpec().GetCompression()
	}
	codec := batch.CodecNone
	if comp != "" {
		if codec, err = batch.ParseCodec(comp); err != nil {
			return nil, err
		}
	}
	p := &Producer{
		c: c, routes: c.routesFor(topic), topic: topic, shards: shards, codec: codec, o: o,
		log:   c.log.With("topic", topic),
		open:  make([]*producerBatch, shards),
		space: make(chan struct{}),
		idle:  make(chan struct{}),
	}
	close(p.idle)
	p.rpcCtx, p.rpcCancel = context.WithCancel(context.Background())
	p.routes.seed(info)
	pid := newProducerID()
	for i := range shards {
		s := newShardSender(p, i, pid)
		p.senders = append(p.senders, s)
		p.wg.Go(s.run)
	}
	return p, nil
}

// Shards returns the topic's shard count.
func (p *Producer) Shards() uint32 { return p.shards }

// recordSize is the size a record counts for in batches and the buffer.
func recordSize(r *batch.Record) int {
	n := len(r.Key) + len(r.Value) + recordOverhead
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// Send queues a record. cb (may be nil) is called exactly once, from the shard's sender
// goroutine, in offset order per shard; it must not block for long nor call Flush or
// Close. A failed record's Result.Err is a *ShardError. Send blocks while
// MaxBufferedBytes are buffered: until records are called back (each is, at the latest,
// DeliveryTimeout after it was sent), ctx ends, or the producer is closed. An error from
// Send (ctx's error when ctx ended first) means the record was not queued and cb will
// not be called.
func (p *Producer) Send(ctx context.Context, m Message, cb func(Result)) error {
	if i, ok := m.Shard.Index(); ok && i >= p.shards {
		return fmt.Errorf("%w: %d (topic %q has %d shards)", ErrInvalidShard, i, p.topic, p.shards)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	rec := batch.Record{Key: m.Key, Value: m.Value, Headers: m.Headers, Timestamp: ts.UnixMilli()}
	size := recordSize(&rec)

	p.mu.Lock()
	for !p.closed && p.buffered > 0 && p.buffered+size > p.o.MaxBufferedBytes {
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	shard := p.route(&m)
	b := p.open[shard]
	if b != nil && b.bytes+size > p.o.BatchBytes {
		p.seal(shard)
		b = nil
	}
	if b == nil {
		b = p.openBatch(shard)
	}
	b.recs = append(b.recs, rec)
	b.cbs = append(b.cbs, cb)
	b.bytes += size
	p.buffered += size
	if p.outstanding == 0 {
		p.idle = make(chan struct{})
	}
	p.outstanding++
	if len(b.recs) >= p.o.BatchRecords || b.bytes >= p.o.BatchBytes || p.o.Linger < 0 {
		p.seal(shard)
	}
	return nil
}

// route picks the record's shard. Called with p.mu held.
func (p *Producer) route(m *Message) uint32 {
	if i, ok := m.Shard.Index(); ok {
		return i
	}
	if len(m.Key) > 0 {
		return ShardForKey(m.Key, p.shards)
	}
	return p.sticky
}

// openBatch starts shard's open batch and its linger timer. Called with p.mu held.
func (p *Producer) openBatch(shard uint32) *producerBatch {
	now := time.Now()
	b := &producerBatch{shard: shard, deadline: now.Add(p.o.DeliveryTimeout)}
	if p.o.Linger > 0 {
		b.linger = time.AfterFunc(p.o.Linger, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.open[shard] == b {
				p.seal(shard)
			}
		})
	}
	p.open[shard] = b
	return b
}

// seal hands shard's open batch to its sender. Called with p.mu held.
func (p *Producer) seal(shard uint32) {
	b := p.open[shard]
	if b == nil {
		return
	}
	p.open[shard] = nil
	if b.linger != nil {
		b.linger.Stop()
	}
	if shard == p.sticky {
		p.sticky = (p.sticky + 1) % p.shards
	}
	p.senders[shard].enqueue(b)
}

func (p *Producer) sealAll() {
	for i := range p.shards {
		p.seal(i)
	}
}

// release returns a delivered batch's records to the buffer.
func (p *Producer) release(bytes, records int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buffered -= bytes
	p.outstanding -= records
	close(p.space)
	p.space = make(chan struct{})
	if p.outstanding == 0 {
		close(p.idle)
	}
}

// SendSync sends one record and waits for its result. The returned error is the
// record's error (or ctx's, in which case the record may still be delivered later).
func (p *Producer) SendSync(ctx context.Context, m Message) (Result, error) {
	done := make(chan Result, 1)
	if err := p.Send(ctx, m, func(r Result) { done <- r }); err != nil {
		return Result{}, err
	}
	select {
	case r := <-done:
		return r, r.Err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Flush seals all open batches and waits until every record sent so far (and any sent
// meanwhile) has been called back, which each is by its DeliveryTimeout at the latest.
// When ctx ends first Flush returns ctx's error and the records stay queued.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.sealAll()
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes every record (each is acknowledged or fails by its DeliveryTimeout),
// then stops the producer. Send after Close returns ErrClosed.
func (p *Producer) Close() error { return p.CloseContext(context.Background()) }

// CloseContext is Close bounded by ctx. When ctx ends before every record has been
// called back, it cancels the Produce requests in flight and fails every record not
// acknowledged by then with ErrAborted (a record that had been sent may or may not be
// written; the error says which), and returns ctx's error once every callback has run,
// which is at once: it does not wait for the cluster.
func (p *Producer) CloseContext(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.sealAll()
		for _, s := range p.senders {
			s.close()
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	default:
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			p.abort(context.Cause(ctx))
			<-done
		}
	}
	p.rpcCancel()
	return err
}

// abort makes every sender fail what it holds and cancels the requests in flight.
func (p *Producer) abort(cause error) {
	for _, s := range p.senders {
		s.abort(cause)
	}
	p.rpcCancel()
}

// Stats returns the producer's counters.
func (p *Producer) Stats() ProducerStats {
	return ProducerStats{
		Records:    p.stats.records.Load(),
		Batches:    p.stats.batches.Load(),
		Bytes:      p.stats.bytes.Load(),
		Retries:    p.stats.retries.Load(),
		Duplicates: p.stats.duplicates.Load(),
		Errors:     p.stats.errors.Load(),
	}
}
