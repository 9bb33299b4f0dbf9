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
	r.reads = append(r.reads, rs...)
	r.mu.Unlock()
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

// producer sends records "p<id>-<seq>" round-robin over the shards at rate records/s
// until ctx ends, then flushes for at most flushTimeout. Every record's outcome goes to rec.
type producer struct {
	id           int
	addrs        []string
	topic        string
	rate         float64
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
	var pr *client.Producer
	for attempt := 0; pr == nil; attempt++ {
		pr, err = c.NewProducer(ctx, p.topic, client.ProducerOptions{
			Linger: 2 * time.Millisecond, DeliveryTimeout: 30 * time.Second, RequestTimeout: 3 * time.Second,
		})
		if err != nil {
			if ctx.Err() != nil || attempt > 100 {
				return err
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
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
		v := Value(p.id, seq)
		err := pr.Send(ctx, client.Message{Value: []byte(v), Shard: int(seq % uint64(shards))}, func(res client.Result) {
			if res.Err != nil {
				p.rec.fail(Failed{Producer: p.id, Seq: seq, Value: v, Err: res.Err.Error()})
				return
			}
			p.rec.ack(Ack{Producer: p.id, Seq: seq, Shard: res.Shard, Offset: res.Offset, Value: v, AtMs: p.rec.sinceMs()})
		})
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
				rs[i] = Read{Consumer: k.id, Shard: r.Shard, Offset: r.Offset, Value: string(r.Value)}
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
