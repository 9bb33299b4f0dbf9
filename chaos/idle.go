package chaos

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"shardlog/client"
)

// idleWriter keeps a topic's shards idle: each shard gets one record every interval, the
// shards in turn (so some record is sent every interval/shards). An idle shard is
// unwritable from a send until its next acknowledgement; a rare record may miss an
// outage, so as soon as a fault is applied the harness asks for a probe of the shards it
// may have cut off (probe): the writer sends one record to each, and on any failed send
// sends again to that shard, until each succeeds. The checker then sees each outage from
// the probe's send to the shard's first acknowledgement after it, through the fault and
// the recovery after its heal. There is no probe at the heal, and the shards not probed
// get only their regular record: they stay idle (quiesced) as long as the schedule lets
// them before the next fault hits.
type idleWriter struct {
	id       int
	addrs    []string
	topic    string
	interval time.Duration
	rec      *recorder
	log      *slog.Logger

	kick chan struct{} // a probe was asked for

	mu       sync.Mutex
	shards   int               // the topic's shard count, once known
	pending  map[int]int       // shard -> records sent and not yet called back
	again    map[int]bool      // shard -> send a record as soon as none is pending
	lastSent map[int]time.Time // shard -> when a record was last sent to it
}

func newIdleWriter(id int, addrs []string, topic string, interval time.Duration, rec *recorder, log *slog.Logger) *idleWriter {
	return &idleWriter{id: id, addrs: addrs, topic: topic, interval: interval, rec: rec, log: log,
		kick: make(chan struct{}, 1), pending: map[int]int{}, again: map[int]bool{}, lastSent: map[int]time.Time{}}
}

// probe asks for one record to each of shards (nil: every shard), at once, without
// waiting.
func (w *idleWriter) probe(shards []int) {
	w.mu.Lock()
	if shards == nil {
		for s := range w.shards {
			shards = append(shards, s)
		}
	}
	for _, s := range shards {
		w.again[s] = true
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// idleFor returns, per shard, how long ago a record was last sent to it (never counts
// as since the writer started).
func (w *idleWriter) idleFor() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]time.Duration, w.shards)
	for s := range out {
		t, ok := w.lastSent[s]
		if !ok {
			t = w.rec.start
		}
		out[s] = time.Since(t)
	}
	return out
}

func (w *idleWriter) run(ctx context.Context) error {
	c, err := client.Dial(context.WithoutCancel(ctx), w.addrs, client.Options{DialTimeout: 30 * time.Second, Logger: w.log})
	if err != nil {
		return err
	}
	defer c.Close()
	pr, err := newProducer(ctx, c, w.topic)
	if err != nil {
		return err
	}
	shards := int(pr.Shards())
	w.mu.Lock()
	w.shards = shards
	w.mu.Unlock()
	every := max(w.interval/time.Duration(shards), 10*time.Millisecond)
	regular := time.NewTicker(every)
	defer regular.Stop()
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	var seq uint64
	next := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-regular.C:
			w.mark(next)
			next = (next + 1) % shards
		case <-w.kick:
		case <-retry.C:
		}
		for _, s := range w.due(shards) {
			if err := w.send(ctx, pr, seq, s); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			seq++
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
	defer cancel()
	if err := pr.Flush(fctx); err != nil {
		w.log.Warn("idle writer flush", "producer", w.id, "err", err)
	}
	return pr.Close()
}

// mark asks for a record to shard s.
func (w *idleWriter) mark(s int) {
	w.mu.Lock()
	w.again[s] = true
	w.mu.Unlock()
}

// due returns the shards asked for that have no record pending, and marks them pending.
func (w *idleWriter) due(shards int) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for s := range shards {
		if w.again[s] && w.pending[s] == 0 {
			w.again[s] = false
			w.pending[s]++
			w.lastSent[s] = time.Now()
			out = append(out, s)
		}
	}
	return out
}

func (w *idleWriter) send(ctx context.Context, pr *client.Producer, seq uint64, s int) error {
	err := send(ctx, pr, w.rec, w.topic, w.id, seq, s, func(err error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.pending[s]--
		if err != nil {
			w.again[s] = true // until it succeeds
		}
	})
	if err != nil {
		w.mu.Lock()
		w.pending[s]--
		w.mu.Unlock()
	}
	return err
}
