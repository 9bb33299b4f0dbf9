package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"shardlog/client"
)

// codeCounter counts failed unary RPCs by gRPC status code.
type codeCounter struct {
	mu sync.Mutex
	n  map[string]uint64
}

// intercept is a grpc.UnaryClientInterceptor that counts the call's error code.
func (c *codeCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		code := status.Code(err).String()
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]uint64{}
		}
		c.n[code]++
		c.mu.Unlock()
	}
	return err
}

func (c *codeCounter) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.n) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// produce runs the produce phase and fills rep.Produce. It returns the producers'
// summed counters.
func (t *target) produce(ctx context.Context, w Workload, topic string, rep *Report, errs *errorLog) (client.ProducerStats, error) {
	var sum client.ProducerStats
	var clients []*client.Client
	var producers []*client.Producer
	defer func() {
		for _, p := range producers {
			_ = p.Close()
		}
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	codes := &codeCounter{}
	defer func() { rep.RPCErrors = codes.snapshot() }()
	for range w.Producers {
		c, err := client.Dial(ctx, t.addrs, client.Options{Logger: t.log,
			DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(codes.intercept)}})
		if err != nil {
			return sum, err
		}
		clients = append(clients, c)
		p, err := c.NewProducer(ctx, topic, client.ProducerOptions{
			BatchBytes: w.BatchSize, Linger: w.Linger, MaxInFlight: w.InFlight, Compression: w.Compression,
			MaxBufferedBytes: w.BufferBytes,
		})
		if err != nil {
			return sum, err
		}
		producers = append(producers, p)
	}
	s := &sendState{hist: NewHistogram(), errs: errs}
	start := time.Now()
	deadline := start.Add(w.Duration)
	var wg sync.WaitGroup
	for i, p := range producers {
		quota := int64(-1)
		if w.Records > 0 {
			quota = w.Records / int64(w.Producers)
			if int64(i) < w.Records%int64(w.Producers) {
				quota++
			}
		}
		wg.Go(func() { s.loop(ctx, w, p, i, start, deadline, quota) })
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	for _, p := range producers {
		st := p.Stats()
		sum.Records += st.Records
		sum.Batches += st.Batches
		sum.Bytes += st.Bytes
		sum.Retries += st.Retries
		sum.Duplicates += st.Duplicates
		sum.Errors += st.Errors
	}
	pr := &rep.Produce
	pr.Records, pr.Bytes, pr.Seconds = s.acked.Load(), s.bytes.Load(), elapsed
	pr.RecordsPerSec = rate(pr.Records, elapsed)
	pr.MBPerSec = mb(rate(pr.Bytes, elapsed))
	pr.LatencyMs = s.hist.Summary()
	return sum, nil
}

// sendState is shared by the send loops of one produce phase.
type sendState struct {
	hist         *Histogram
	errs         *errorLog
	acked, bytes atomic.Uint64
}

// loop sends producer i's records: quota of them (negative: until deadline), as fast
// as Send accepts them or, with a rate, each at its intended time. Latency is measured
// from the intended time (closed loop: the time Send was called). It ends with a Flush.
func (s *sendState) loop(ctx context.Context, w Workload, p *client.Producer, i int, start, deadline time.Time, quota int64) {
	seed := w.Seed + uint64(i)*0x9e3779b97f4a7c15
	payload, err := NewPayload(w.RecordSize, w.Compressibility, seed)
	if err != nil {
		s.errs.add(err)
		return
	}
	keys := w.Keys.NewGen(seed)
	var interval time.Duration
	if w.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(w.Producers) / w.Rate)
		start = start.Add(interval * time.Duration(i) / time.Duration(w.Producers)) // stagger
	}
	for n := int64(0); quota < 0 || n < quota; n++ {
		var intended time.Time
		if interval > 0 {
			intended = start.Add(time.Duration(n) * interval)
			if quota < 0 && !intended.Before(deadline) {
				break
			}
			sleepUntil(ctx, intended)
		} else {
			intended = time.Now()
			if quota < 0 && !intended.Before(deadline) {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		key := keys.Next()
		m := client.Message{Key: key, Value: payload.Next(intended), Timestamp: intended}
		if !s.send(ctx, p, m) {
			break
		}
	}
	s.flush(ctx, p)
}

// send sends m, whose Timestamp is the time its latency counts from, and records its
// acknowledgement or error. It reports false when the send loop must stop: Send
// failed (recorded unless ctx ended).
func (s *sendState) send(ctx context.Context, p *client.Producer, m client.Message) bool {
	size, from := uint64(len(m.Key)+len(m.Value)), m.Timestamp
	err := p.Send(ctx, m, func(r client.Result) {
		if r.Err != nil {
			s.errs.add(r.Err)
			return
		}
		s.hist.Record(time.Since(from))
		s.acked.Add(1)
		s.bytes.Add(size)
	})
	if err != nil && ctx.Err() == nil {
		s.errs.add(err)
	}
	return err == nil
}

// flush waits for p's outstanding records, recording a failure.
func (s *sendState) flush(ctx context.Context, p *client.Producer) {
	if err := p.Flush(ctx); err != nil {
		s.errs.add(err)
	}
}

// consumeStats accumulates what consumers read.
type consumeStats struct {
	records, bytes atomic.Uint64
	hist           *Histogram // nil: no latency
}

// consumeLoop polls k until ctx ends, Poll fails, or done (checked before each Poll)
// reports true.
func consumeLoop(ctx context.Context, k *client.Consumer, st *consumeStats, errs *errorLog, done func() bool) {
	var lat []time.Duration
	for ctx.Err() == nil {
		if done != nil && done() {
			return
		}
		recs, err := k.Poll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errs.add(err)
			}
			return
		}
		now := time.Now()
		var bytes uint64
		lat = lat[:0]
		for i := range recs {
			r := &recs[i]
			bytes += uint64(len(r.Key) + len(r.Value))
			if st.hist != nil {
				sent, ok := SentAt(r.Value)
				if !ok {
					sent = r.Timestamp
				}
				lat = append(lat, now.Sub(sent))
			}
		}
		st.records.Add(uint64(len(recs)))
		st.bytes.Add(bytes)
		if st.hist != nil {
			st.hist.RecordAll(lat)
		}
	}
}

// backlog reads the whole topic from offset 0 up to ends with w.Consumers consumers
// (bounded by w.BacklogTimeout) and fills res.
func backlog(ctx context.Context, adm *client.Client, topic string, w Workload, ends map[uint32]uint64, res *ConsumeResult, errs *errorLog) {
	ctx, cancel := context.WithTimeout(ctx, w.BacklogTimeout)
	defer cancel()
	var total uint64
	for _, e := range ends {
		total += e
	}
	st := &consumeStats{}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range w.Consumers {
		shards := shardsOf(i, w.Consumers, w.Shards)
		if len(shards) == 0 {
			continue
		}
		k, err := adm.NewConsumer(ctx, topic, client.ConsumerOptions{Shards: shards, Start: client.StartEarliest})
		if err != nil {
			errs.add(err)
			continue
		}
		wg.Go(func() {
			defer k.Close()
			consumeLoop(ctx, k, st, errs, func() bool {
				pos := k.Positions()
				for _, s := range shards {
					if pos[s] < ends[s] {
						return false
					}
				}
				return true
			})
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	res.Records, res.Bytes, res.Seconds = st.records.Load(), st.bytes.Load(), elapsed
	res.RecordsPerSec = rate(res.Records, elapsed)
	res.MBPerSec = mb(rate(res.Bytes, elapsed))
	res.Complete = res.Records >= total
}
