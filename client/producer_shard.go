package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/proto/shardlogv1"
)

type batchState uint8

const (
	batchQueued   batchState = iota // sealed, no sequence yet
	batchInFlight                   // a Produce request is outstanding
	batchWaiting                    // failed with a retryable error, waits to be resent
	batchAcked                      // acknowledged; waits for earlier batches' callbacks
	batchFailed                     // failed for good; waits for earlier batches' callbacks
)

// producerBatch is a group of records for one shard. The Producer fills it under Producer.mu until
// it is sealed; from then on only the shard's sender goroutine touches it.
type producerBatch struct {
	shard    uint32
	recs     []batch.Record
	cbs      []func(Result)
	bytes    int
	deadline time.Time   // DeliveryTimeout after the first record
	linger   *time.Timer // seals the batch after Linger

	state       batchState
	data        []byte // encoded once, resent unchanged
	producerID  uint64
	seq         uint64
	attempt     int // sends so far
	retryAt     time.Time
	waitEarlier bool // Aborted: resend only once every earlier batch is acknowledged
	lastErr     error
	base        uint64
	err         error
}

type sendResult struct {
	b       *producerBatch
	attempt int
	resp    *shardlogv1.ProduceResponse
	err     error
}

// shardSender owns one shard's sequence and in-flight window. Its run goroutine is the
// only one touching producerID, nextSeq, win and outstanding; qmu guards queue and closing.
type shardSender struct {
	p       *Producer
	shard   uint32
	notify  chan struct{} // cap 1: queue or closing changed
	results chan sendResult

	qmu     sync.Mutex
	queue   []*producerBatch
	closing bool
	aborted error // CloseContext gave up: the cause; fail everything not acknowledged

	producerID  uint64
	nextSeq     uint64
	firstAcked  bool             // sequence 0 of producerID is acknowledged
	win         []*producerBatch // sequenced batches not yet called back, in sequence order
	outstanding int              // Produce requests whose result has not been handled
}

func newShardSender(p *Producer, shard uint32, pid uint64) *shardSender {
	return &shardSender{
		p: p, shard: shard, producerID: pid,
		notify:  make(chan struct{}, 1),
		results: make(chan sendResult, 2*MaxMaxInFlight),
	}
}

func (s *shardSender) lock()   { s.qmu.Lock() }
func (s *shardSender) unlock() { s.qmu.Unlock() }

func (s *shardSender) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *shardSender) enqueue(b *producerBatch) {
	s.lock()
	s.queue = append(s.queue, b)
	s.unlock()
	s.wake()
}

func (s *shardSender) close() {
	s.lock()
	s.closing = true
	s.unlock()
	s.wake()
}

// abort makes run fail every batch not acknowledged yet; the producer cancels the
// requests in flight, so run finishes as soon as they return.
func (s *shardSender) abort(cause error) {
	s.lock()
	if s.aborted == nil {
		s.aborted = cause
	}
	s.unlock()
	s.wake()
}

func (s *shardSender) abortCause() error {
	s.lock()
	defer s.unlock()
	return s.aborted
}

// drop fails the queued batches and those waiting for a retry with the abort cause.
// Batches in flight fail in handle when their canceled request returns (or succeed,
// if the server acknowledged them first).
func (s *shardSender) drop(cause error) {
	for b := s.pop(); b != nil; b = s.pop() {
		b.state, b.err = batchFailed, &abortError{cause: cause}
		s.win = append(s.win, b)
	}
	for _, b := range s.win {
		if b.state == batchWaiting || b.state == batchQueued {
			b.state, b.err = batchFailed, &abortError{cause: cause, sent: b.attempt > 0}
		}
	}
}

// expired is the error of a batch whose DeliveryTimeout passed.
func (s *shardSender) expired(b *producerBatch) error {
	return &deliveryError{after: s.p.o.DeliveryTimeout, last: b.lastErr, noLeader: s.p.routes.leaderless(s.shard)}
}

// pop takes the oldest queued batch and merges into it the queued batches behind it
// while the result stays within BatchBytes and BatchRecords. Batches queue here when
// the in-flight window is full; Kafka's accumulator keeps filling such a batch, and
// without merging, a producer writing to many shards sent a stream of tiny
// linger-sealed batches (16 records each at 256 shards) and paid Raft's per-proposal
// cost for every one of them.
func (s *shardSender) pop() *producerBatch {
	s.lock()
	defer s.unlock()
	if len(s.queue) == 0 {
		return nil
	}
	b := s.queue[0]
	n := 1
	for ; n < len(s.queue); n++ {
		next := s.queue[n]
		if b.bytes+next.bytes > s.p.o.BatchBytes || len(b.recs)+len(next.recs) > s.p.o.BatchRecords {
			break
		}
		b.recs = append(b.recs, next.recs...)
		b.cbs = append(b.cbs, next.cbs...)
		b.bytes += next.bytes
		b.deadline = minTime(b.deadline, next.deadline)
	}
	clear(s.queue[:n])
	s.queue = s.queue[n:]
	return b
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finished reports whether the producer is closing and every batch is called back.
func (s *shardSender) finished() bool {
	s.lock()
	defer s.unlock()
	return s.closing && len(s.queue) == 0 && len(s.win) == 0 && s.outstanding == 0
}

func (s *shardSender) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		if cause := s.abortCause(); cause != nil {
			s.drop(cause)
		} else {
			s.resend(now)
			s.deliver() // frees window slots for launch
			for s.launch(now) {
				// Batches that failed at launch (expired, unencodable) took window
				// slots: call them back and launch again, or the queue would wait
				// for an event that never comes.
				s.deliver()
			}
		}
		s.deliver()
		if s.finished() {
			return
		}
		timer.Reset(s.nextWake(now))
		select {
		case <-s.notify:
		case r := <-s.results:
			s.handle(r, time.Now())
		case <-timer.C:
		}
	}
}

// recovering reports whether new batches must wait: an earlier batch waits for a retry
// (a new one would only be rejected as out of order), or a batch of an abandoned
// producer ID is still in flight (a new-epoch batch could overtake it).
func (s *shardSender) recovering() bool {
	for _, b := range s.win {
		if b.state == batchWaiting || (b.state == batchInFlight && b.producerID != s.producerID) {
			return true
		}
	}
	return false
}

// launch sequences and sends queued batches while the window has room. It reports
// whether a batch failed without being sent.
func (s *shardSender) launch(now time.Time) (failed bool) {
	for len(s.win) < s.p.o.MaxInFlight && !s.recovering() {
		if s.nextSeq > 0 && !s.firstAcked {
			// NB: the shard state machine accepts any sequence from a producer ID it
			// has not seen, so sequence 1 overtaking sequence 0 would be applied and
			// sequence 0 then rejected as too old. Pipeline only once 0 is in.
			return failed
		}
		b := s.pop()
		if b == nil {
			return failed
		}
		s.win = append(s.win, b)
		if !now.Before(b.deadline) {
			b.state, b.err, failed = batchFailed, s.expired(b), true
			continue
		}
		data, err := batch.Encode(nil, b.recs, s.p.codec)
		if err != nil {
			b.state, b.err, failed = batchFailed, fmt.Errorf("client: encode batch: %w", err), true
			continue
		}
		b.data, b.producerID, b.seq = data, s.producerID, s.nextSeq
		s.nextSeq++
		s.send(b, now)
	}
	return failed
}

// resend sends waiting batches whose backoff is over, in sequence order: it stops at the
// first batch that must keep waiting, so a later batch never goes out before an earlier one.
func (s *shardSender) resend(now time.Time) {
	earlierUnresolved := false
	for _, b := range s.win {
		switch b.state {
		case batchInFlight:
			earlierUnresolved = true
		case batchWaiting:
			if !now.Before(b.deadline) {
				s.giveUp(b, s.expired(b))
				continue
			}
			if now.Before(b.retryAt) || (b.waitEarlier && earlierUnresolved) {
				return
			}
			s.p.stats.retries.Add(1)
			s.send(b, now)
			earlierUnresolved = true
		}
	}
}

func (s *shardSender) send(b *producerBatch, now time.Time) {
	b.state = batchInFlight
	b.attempt++
	s.outstanding++
	timeout := min(s.p.o.RequestTimeout, b.deadline.Sub(now))
	req := &shardlogv1.ProduceRequest{
		Topic: s.p.topic, Shard: s.shard, ProducerId: b.producerID, Sequence: b.seq, Batch: b.data,
	}
	attempt := b.attempt
	go func() {
		t := s.p.routes.target(s.shard)
		if t.leader {
			timeout = min(timeout, s.p.o.LeaderAttemptTimeout)
		}
		ctx, cancel := context.WithTimeout(s.p.rpcCtx, timeout)
		defer cancel()
		var md metadata.MD
		resp, err := shardlogv1.NewLogClient(t.cc).Produce(ctx, req, grpc.Header(&md))
		s.p.routes.observe(s.shard, t, md, err)
		s.results <- sendResult{b: b, attempt: attempt, resp: resp, err: err}
	}()
}

// handle applies the result of one Produce request.
func (s *shardSender) handle(r sendResult, now time.Time) {
	s.outstanding--
	b := r.b
	if b.state != batchInFlight || r.attempt != b.attempt {
		return // the batch was given up while this request was outstanding
	}
	if r.err == nil {
		if n := r.resp.GetRecordCount(); n != 0 && int(n) != len(b.recs) {
			b.state = batchFailed
			b.err = fmt.Errorf("client: server acknowledged %d records of a batch of %d", n, len(b.recs))
			return
		}
		b.state, b.base = batchAcked, r.resp.GetBaseOffset()
		if b.seq == 0 && b.producerID == s.producerID {
			s.firstAcked = true
		}
		s.p.stats.batches.Add(1)
		s.p.stats.records.Add(uint64(len(b.recs)))
		s.p.stats.bytes.Add(uint64(len(b.data)))
		if r.resp.GetDuplicate() {
			s.p.stats.duplicates.Add(1)
		}
		return
	}
	b.lastErr = r.err
	if cause := s.abortCause(); cause != nil {
		b.state, b.err = batchFailed, &abortError{cause: cause, sent: true}
		return
	}
	switch {
	case !retryable(r.err):
		s.giveUp(b, r.err)
	case !now.Before(b.deadline):
		s.giveUp(b, s.expired(b))
	default:
		b.state = batchWaiting
		b.waitEarlier = status.Code(r.err) == codes.Aborted && s.earlierUnresolved(b)
		b.retryAt = now
		if !b.waitEarlier {
			b.retryAt = now.Add(backoff(b.attempt))
		}
	}
}

// earlierUnresolved reports whether a batch before b is neither acknowledged nor failed.
func (s *shardSender) earlierUnresolved(b *producerBatch) bool {
	for _, x := range s.win {
		if x == b {
			return false
		}
		if x.state == batchInFlight || x.state == batchWaiting {
			return true
		}
	}
	return false
}

// giveUp fails b and every later unresolved batch sent under the same producer ID: the
// server applies a producer's batches strictly in sequence, so none of them can apply
// after b is abandoned. The shard then moves to a fresh producer ID (launch waits until
// the old ID's requests have settled, so new batches cannot overtake them).
func (s *shardSender) giveUp(b *producerBatch, err error) {
	s.p.log.Warn("producer batch failed", "shard", s.shard, "seq", b.seq, "records", len(b.recs), "err", err)
	after := false
	for _, x := range s.win {
		if x == b {
			after = true
			x.state, x.err = batchFailed, err
			continue
		}
		if after && x.producerID == b.producerID && (x.state == batchInFlight || x.state == batchWaiting) {
			x.state, x.err = batchFailed, fmt.Errorf("%w: %w", ErrEarlierBatchFailed, err)
		}
	}
	if b.producerID == s.producerID {
		s.producerID, s.nextSeq, s.firstAcked = newProducerID(), 0, false
	}
}

// deliver calls back the batches at the head of the window that are acknowledged or failed.
func (s *shardSender) deliver() {
	for len(s.win) > 0 && (s.win[0].state == batchAcked || s.win[0].state == batchFailed) {
		b := s.win[0]
		s.win[0] = nil
		s.win = s.win[1:]
		if b.state == batchFailed {
			s.p.stats.errors.Add(uint64(len(b.recs)))
		}
		for i, cb := range b.cbs {
			if cb == nil {
				continue
			}
			if b.state == batchAcked {
				cb(Result{Shard: s.shard, Offset: b.base + uint64(i)})
			} else {
				cb(Result{Shard: s.shard, Err: &ShardError{Topic: s.p.topic, Shard: s.shard, Err: b.err}})
			}
		}
		s.p.release(b.bytes, len(b.recs))
	}
}

// nextWake is how long run may sleep before a waiting batch needs attention.
func (s *shardSender) nextWake(now time.Time) time.Duration {
	wake := now.Add(time.Hour)
	for _, b := range s.win {
		if b.state != batchWaiting {
			continue
		}
		if b.deadline.Before(wake) {
			wake = b.deadline
		}
		if b.retryAt.After(now) && b.retryAt.Before(wake) {
			wake = b.retryAt
		}
	}
	return max(wake.Sub(now), time.Millisecond)
}
