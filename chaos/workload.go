package chaos

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"shardlog/client"
)

// recorder collects a run's history from concurrent producers and consumers.
type recorder struct {
	start time.Time

	mu     sync.Mutex
	acks   []Ack
	failed []Failed
	reads  []Read
	// next is, per (topic, consumer, shard), the offset after the last read.
	next map[readKey]uint64
}

// readKey names one consumer's position in one shard.
type readKey struct {
	topic    string
	consumer int
	shard    uint32
}

func (r *recorder) sinceMs() int64 { return time.Since(r.start).Milliseconds() }

func (r *recorder) ack(a Ack) {
	r.mu.Lock()
	r.acks = append(r.acks, a)
	r.mu.Unlock()
}

func (r *recorder) fail(f Failed) {
	r.mu.Lock()
	r.failed = append(r.failed, f)
	r.mu.Unlock()
}

func (r *recorder) read(rs []Read) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = append(r.reads, rs...)
	if r.next == nil {
		r.next = map[readKey]uint64{}
	}
	for _, rd := range rs {
		r.next[readKey{rd.Topic, rd.Consumer, rd.Shard}] = rd.Offset + 1
	}
}

// position returns the offset after the last record the consumer read from the shard.
func (r *recorder) position(topic string, consumer int, shard uint32) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next[readKey{topic, consumer, shard}]
}

func (r *recorder) counts() (acks, failed, reads int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acks), len(r.failed), len(r.reads)
}

// shuffled returns addrs in a random order drawn from rng, so each client starts on a
// different node.
func shuffled(rng *rand.Rand, addrs []string) []string {
	out := append([]string(nil), addrs...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// message returns producer id's record seq, stamped now, as the client sends it, and its
// timestamp.
func message(id int, seq uint64, shard int) (client.Message, int64) {
	ts := time.Now().UnixMilli()
	rec := Expect(id, seq, ts)
	return client.Message{Key: []byte(rec.Key), Value: []byte(rec.Value), Headers: segmentHeaders(rec.Headers),
		Timestamp: time.UnixMilli(ts), Shard: client.ToShard(uint32(shard))}, ts
}

// send sends producer id's record seq to shard and records its outcome in rec. An error
// means the record was not queued (nothing is recorded).
func send(ctx context.Context, pr *client.Producer, rec *recorder, topic string, id int, seq uint64, shard int, then func(error)) error {
	m, ts := message(id, seq, shard)
	v := string(m.Value)
	sent := rec.sinceMs()
	return pr.Send(ctx, m, func(res client.Result) {
		if res.Err != nil {
			rec.fail(Failed{Topic: topic, Producer: id, Seq: seq, Shard: uint32(shard), Value: v, TsMs: ts,
				SentAtMs: sent, Err: res.Err.Error()})
		} else {
			rec.ack(Ack{Topic: topic, Producer: id, Seq: seq, Shard: res.Shard, Offset: res.Offset, Value: v, TsMs: ts,
				SentAtMs: sent, AtMs: rec.sinceMs()})
		}
		if then != nil {
			then(res.Err)
		}
	})
}

// newProducer opens a producer on topic, retrying (bounded) while the cluster is not
// ready.
func newProducer(ctx context.Context, c *client.Client, topic string) (*client.Producer, error) {
	for attempt := 0; ; attempt++ {
		pr, err := c.NewProducer(ctx, topic, client.ProducerOptions{
			Linger: 2 * time.Millisecond, DeliveryTimeout: 30 * time.Second, RequestTimeout: 3 * time.Second,
		})
		if err == nil {
			return pr, nil
		}
		if ctx.Err() != nil || attempt > 100 {
			return nil, err
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// producer sends records "p<id>-<seq>" (key, header and timestamp as Expect says)
// round-robin from shard first over the shards at rate records/s
// until ctx ends, then flushes for at most flushTimeout. Every record's outcome goes to rec.
type producer struct {
	id    int
	addrs []string
	topic string
	rate  float64
	// first is the shard of the producer's first record; producers start at different
	// shards so that they do not all write the same shard at the same moment (with few
	// records per second that left every shard quiet most of the time).
	first        uint64
	flushTimeout time.Duration
	rec          *recorder
	log          *slog.Logger
}

func (p *producer) run(ctx context.Context) error {
	c, err := client.Dial(context.WithoutCancel(ctx), p.addrs, client.Options{DialTimeout: 30 * time.Second, Logger: p.log})
	if err != nil {
		return err
	}
	defer c.Close()
	pr, err := newProducer(ctx, c, p.topic)
	if err != nil {
		return err
	}
	shards := pr.Shards()
	interval := time.Duration(float64(time.Second) / p.rate)
	next := time.Now()
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		if d := time.Until(next); d > 0 {
			sleepCtx(ctx, d)
		}
		next = next.Add(interval)
		if ctx.Err() != nil {
			break
		}
		err := send(ctx, pr, p.rec, p.topic, p.id, seq, int((p.first+seq)%uint64(shards)), nil)
		if err != nil {
			// Not queued: the callback will not run and the record was never sent.
			if ctx.Err() != nil {
				break
			}
			return err
		}
		// Falling far behind (the cluster is slow or down) must not turn into a burst.
		if time.Since(next) > time.Second {
			next = time.Now()
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.flushTimeout)
	defer cancel()
	if err := pr.Flush(fctx); err != nil {
		p.log.Warn("producer flush", "producer", p.id, "err", err)
	}
	return pr.Close()
}

// consumer tails every shard from the earliest offset and records what it reads. It
// reopens its consumer (at its positions) after a fatal error.
type consumer struct {
	id    int
	addrs []string
	topic string
	rec   *recorder
	log   *slog.Logger
}

func (k *consumer) run(ctx context.Context) error {
	c, err := client.Dial(context.WithoutCancel(ctx), k.addrs, client.Options{DialTimeout: 30 * time.Second, Logger: k.log})
	if err != nil {
		return err
	}
	defer c.Close()
	var positions map[uint32]uint64
	for ctx.Err() == nil {
		cons, err := c.NewConsumer(ctx, k.topic, client.ConsumerOptions{Start: client.StartEarliest, StartOffsets: positions})
		if err != nil {
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		err = k.poll(ctx, cons)
		positions = cons.Positions()
		_ = cons.Close()
		if err != nil && ctx.Err() == nil {
			k.log.Warn("consumer restarts", "consumer", k.id, "err", err)
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	return nil
}

func (k *consumer) poll(ctx context.Context, cons *client.Consumer) error {
	for {
		recs, err := cons.Poll(ctx)
		if len(recs) > 0 {
			rs := make([]Read, len(recs))
			for i, r := range recs {
				rd := Read{Topic: k.topic, Consumer: k.id, Shard: r.Shard, Offset: r.Offset,
					Record: Record{Value: string(r.Value), Key: string(r.Key), TsMs: r.Timestamp.UnixMilli()}}
				for _, h := range r.Headers {
					rd.Headers = append(rd.Headers, Header{h.Key, string(h.Value)})
				}
				rs[i] = rd
			}
			k.rec.read(rs)
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
