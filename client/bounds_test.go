package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/client/clienttest"
	"shardlog/proto/shardlogv1"
)

// Tests that every wait of the producer and consumer is bounded by the delivery
// timeout, the request timeout or the caller's context.

// slack is what a bounded wait may take beyond its bound on a loaded 2-core machine.
const slack = 1500 * time.Millisecond

// callbacks collects producer results.
type callbacks struct {
	mu  sync.Mutex
	res []Result
}

func (c *callbacks) add(r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res = append(c.res, r)
}

func (c *callbacks) all() []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Result(nil), c.res...)
}

// TestProducerFailedRecordNamesShard: a shard that answers only Unavailable fails its
// record at the delivery timeout with an error naming the topic, the shard and the
// server's message.
func TestProducerFailedRecordNamesShard(t *testing.T) {
	srv, c := startFake(t, 11, "events", 4, "none")
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	const timeout = 400 * time.Millisecond
	p, err := c.NewProducer(t.Context(), "events", ProducerOptions{DeliveryTimeout: timeout, RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	_, err = p.SendSync(t.Context(), Message{Value: []byte("x"), Shard: ToShard(3)})
	if d := time.Since(start); d > timeout+slack {
		t.Fatalf("failed after %v, want within %v", d, timeout+slack)
	}
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 3 || se.Topic != "events" {
		t.Fatalf("want a ShardError for shard 3 of events, got %T %v", err, err)
	}
	if !errors.Is(err, ErrDeliveryTimeout) || status.Code(err) != codes.Unavailable {
		t.Fatalf("want delivery timeout wrapping Unavailable, got %v", err)
	}
	for _, want := range []string{"shard 3 of topic events", "delivery timeout (400ms)", "injected: no leader"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
	}
}

// TestProducerDeliveryErrorSaysNoLeader: when the last DescribeTopic named no leader for
// the shard, the delivery error says so, even when the request itself only timed out.
func TestProducerDeliveryErrorSaysNoLeader(t *testing.T) {
	srv, c := startFake(t, 12, "events", 2, "none")
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	// Node 0 is "no node": DescribeTopic reports shard 1 without a leader.
	if err := srv.SetLeader("events", 1, 0, ""); err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer(t.Context(), "events", ProducerOptions{DeliveryTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.SendSync(t.Context(), Message{Value: []byte("x"), Shard: ToShard(1)})
	if err == nil || !strings.Contains(err.Error(), "shard 1 of topic events") || !strings.Contains(err.Error(), noLeaderNote) {
		t.Fatalf("want an error naming shard 1 and the missing leader, got %v", err)
	}
	_, err = p.SendSync(t.Context(), Message{Value: []byte("x"), Shard: ToShard(0)})
	if err == nil || strings.Contains(err.Error(), noLeaderNote) {
		t.Fatalf("shard 0 has a leader, got %v", err)
	}
}

// TestProducerCloseContextAborts: CloseContext returns at once when its context ends,
// calls back every record (acknowledged ones with their offset, the rest with
// ErrAborted) and cancels the requests in flight.
func TestProducerCloseContextAborts(t *testing.T) {
	srv, c := startFake(t, 13, "t", 2, "none")
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{DeliveryTimeout: time.Minute, BatchRecords: 5})
	if err != nil {
		t.Fatal(err)
	}
	var cbs callbacks
	for i := range 10 {
		if err := p.Send(t.Context(), Message{Value: fmt.Appendf(nil, "ok%d", i), Shard: ToShard(uint32(i % 2))}, cbs.add); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	for i := range 40 {
		if err := p.Send(t.Context(), Message{Value: fmt.Appendf(nil, "lost%d", i), Shard: ToShard(uint32(i % 2))}, cbs.add); err != nil {
			t.Fatal(err)
		}
	}
	// Flush is bounded by its context too, and leaves the records queued.
	fctx, fcancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer fcancel()
	if err := p.Flush(fctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush: want deadline exceeded, got %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.CloseContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: want deadline exceeded, got %v", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond+slack {
		t.Fatalf("CloseContext took %v", d)
	}
	res := cbs.all()
	if len(res) != 50 {
		t.Fatalf("%d callbacks, want 50", len(res))
	}
	for i, r := range res[:10] {
		if r.Err != nil {
			t.Fatalf("acknowledged record %d: %v", i, r.Err)
		}
	}
	sent := 0
	for _, r := range res[10:] {
		var se *ShardError
		if !errors.Is(r.Err, ErrAborted) || !errors.As(r.Err, &se) || se.Shard != r.Shard {
			t.Fatalf("want ErrAborted naming shard %d, got %v", r.Shard, r.Err)
		}
		if strings.Contains(r.Err.Error(), "may or may not be written") {
			sent++
		}
	}
	if sent == 0 {
		t.Fatal("no aborted record was reported as sent, though the shards retried them")
	}
	if st := p.Stats(); st.Records != 10 || st.Errors != 40 {
		t.Fatalf("stats %+v", st)
	}
	if err := p.Send(t.Context(), Message{Value: []byte("late")}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// TestProducerSendBoundedWhenBufferFull: a Send blocked on a full buffer returns once
// the buffered records fail by their delivery timeout, and a Send with an ended context
// returns its error at once.
func TestProducerSendBoundedWhenBufferFull(t *testing.T) {
	srv, c := startFake(t, 14, "t", 1, "none")
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	const timeout = 300 * time.Millisecond
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{MaxBufferedBytes: 1000, Linger: -1, DeliveryTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var cbs callbacks
	value := []byte(strings.Repeat("v", 100))
	for range 8 { // 8 records of 100+24 bytes fit in 1000
		if err := p.Send(t.Context(), Message{Value: value, Shard: ToShard(0)}, cbs.add); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := p.Send(context.Background(), Message{Value: value, Shard: ToShard(0)}, cbs.add); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > timeout+slack {
		t.Fatalf("blocked Send returned after %v, want within %v", d, timeout+slack)
	}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Send(done, Message{Value: value, Shard: ToShard(0)}, cbs.add); !errors.Is(err, context.Canceled) {
		t.Fatalf("send with a canceled context: %v", err)
	}
}

// hungFetch answers admin calls and Produce like the fake but never answers Fetch.
type hungFetch struct{ *clienttest.Server }

func (h hungFetch) Fetch(ctx context.Context, _ *shardlogv1.FetchRequest) (*shardlogv1.FetchResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestConsumerFetchBoundedAndReported: a Fetch to a node that never answers ends at
// MaxWait+RequestTimeout, and FetchErrors names the shard.
func TestConsumerFetchBoundedAndReported(t *testing.T) {
	fake := clienttest.NewServer(15)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	shardlogv1.RegisterAdminServer(gs, fake)
	shardlogv1.RegisterLogServer(gs, hungFetch{fake})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	c, err := Dial(t.Context(), []string{lis.Addr().String()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(t.Context(), &shardlogv1.TopicSpec{Name: "t", Shards: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	k, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Shards: []uint32{1}, MaxWait: 100 * time.Millisecond, RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond+slack {
		if _, err := k.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		fe, ok := k.FetchErrors()[1]
		if !ok {
			continue
		}
		if status.Code(fe.Err) != codes.DeadlineExceeded || !strings.Contains(fe.Err.Error(), "shard 1 of topic t") {
			t.Fatalf("fetch error %v", fe.Err)
		}
		return
	}
	t.Fatalf("no fetch error reported after %v", time.Since(start))
}
