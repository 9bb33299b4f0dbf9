package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/client/clienttest"
)

// sent is one record of a producer test and what its callback said.
type sent struct {
	value string
	res   Result
	done  bool
}

// checkExactlyOnce asserts that every record succeeded, is in the server's log exactly
// once at the offset its callback reported, and that each shard's log keeps send order.
func checkExactlyOnce(t *testing.T, srv *clienttest.Server, topic string, shards uint32, recs []*sent) {
	t.Helper()
	checkExactlyOnceAllowing(t, srv, topic, shards, recs, nil)
}

// checkExactlyOnceAllowing is checkExactlyOnce for a log that may also hold, at most
// once each, the values in mayAppear: records whose callback reported a timeout, which
// may or may not have been written.
func checkExactlyOnceAllowing(t *testing.T, srv *clienttest.Server, topic string, shards uint32, recs []*sent, mayAppear map[string]bool) {
	t.Helper()
	where := make(map[string]Result)
	for _, s := range recs {
		if !s.done {
			t.Fatalf("record %s: no callback", s.value)
		}
		if s.res.Err != nil {
			t.Fatalf("record %s: %v", s.value, s.res.Err)
		}
		where[s.value] = s.res
	}
	total := 0
	sendIndex := make(map[string]int, len(recs))
	for _, s := range recs {
		var i int
		if _, err := fmt.Sscanf(s.value[1:], "%d", &i); err != nil {
			i = len(sendIndex)
		}
		sendIndex[s.value] = i
	}
	for sh := range shards {
		offs, log, err := srv.Records(topic, sh)
		if err != nil {
			t.Fatal(err)
		}
		last := map[int]int{} // per writer: send index of the last record seen
		seen := make(map[string]bool)
		for i, r := range log {
			v := string(r.Value)
			if seen[v] {
				t.Fatalf("shard %d: duplicate record %s", sh, v)
			}
			seen[v] = true
			res, ok := where[v]
			if !ok && mayAppear[v] {
				continue
			}
			if !ok {
				t.Fatalf("shard %d: unexpected record %s", sh, v)
			}
			if res.Shard != sh || res.Offset != offs[i] {
				t.Fatalf("record %s: callback said shard %d offset %d, log has shard %d offset %d",
					v, res.Shard, res.Offset, sh, offs[i])
			}
			w := sendIndex[v] / writerSpan
			if l, ok := last[w]; ok && sendIndex[v] < l {
				t.Fatalf("shard %d: record %s sent before an earlier-offset record", sh, v)
			}
			last[w] = sendIndex[v]
		}
		for v := range seen {
			if _, ok := where[v]; ok {
				total++
			}
		}
	}
	if total != len(recs) {
		t.Fatalf("log holds %d records, sent %d", total, len(recs))
	}
}

// writerSpan is the number of consecutive send indexes one produceAll writer owns;
// send order is only defined within a writer.
const writerSpan = 1 << 20

// produceAll sends n records from several goroutines (keyed, keyless and explicit
// shard) and closes the producer.
func produceAll(t *testing.T, p *Producer, n, writers int) []*sent {
	t.Helper()
	recs := make([]*sent, 0, n)
	byWriter := make([][]*sent, writers)
	var mu sync.Mutex
	var lastOffset = map[uint32]int64{}
	var wg sync.WaitGroup
	per := n / writers
	for w := range writers {
		wg.Go(func() {
			for i := w * per; i < (w+1)*per; i++ {
				s := &sent{value: fmt.Sprintf("v%08d", w*writerSpan+i)}
				byWriter[w] = append(byWriter[w], s)
				m := Message{Value: []byte(s.value)}
				switch i % 3 {
				case 0:
					m.Key = []byte(fmt.Sprintf("k%d", i%17))
				case 1:
					m.Shard = ToShard(uint32(i) % p.Shards())
				}
				err := p.Send(t.Context(), m, func(r Result) {
					mu.Lock()
					defer mu.Unlock()
					if r.Err == nil {
						if int64(r.Offset) <= lastOffset[r.Shard]-1 {
							t.Errorf("shard %d: callback offset %d after %d", r.Shard, r.Offset, lastOffset[r.Shard]-1)
						}
						lastOffset[r.Shard] = int64(r.Offset) + 1
					}
					s.res, s.done = r, true
				})
				if err != nil {
					t.Errorf("send %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	for _, ss := range byWriter {
		recs = append(recs, ss...)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return recs
}

func TestProducerExactlyOnceUnderFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults clienttest.Faults
		opts   ProducerOptions
	}{
		{name: "no faults", opts: ProducerOptions{BatchRecords: 50}},
		{name: "unavailable", faults: clienttest.Faults{Unavailable: 0.2}, opts: ProducerOptions{BatchRecords: 40}},
		{name: "applied then deadline exceeded", faults: clienttest.Faults{LateTimeout: 0.25}, opts: ProducerOptions{BatchRecords: 40}},
		{name: "reordered in flight", faults: clienttest.Faults{MaxDelay: 3 * time.Millisecond}, opts: ProducerOptions{BatchRecords: 20, MaxInFlight: 16}},
		{name: "spurious aborted and queue full", faults: clienttest.Faults{SpuriousAborted: 0.1, ResourceExhausted: 0.1}, opts: ProducerOptions{BatchRecords: 30}},
		{name: "everything", faults: clienttest.Faults{
			Unavailable: 0.1, LateTimeout: 0.1, SpuriousAborted: 0.05, ResourceExhausted: 0.05, MaxDelay: 2 * time.Millisecond,
		}, opts: ProducerOptions{BatchRecords: 25, MaxInFlight: 8, Compression: "zstd"}},
		{name: "unknown producer accepts any sequence", faults: clienttest.Faults{AcceptUnknownProducer: true, MaxDelay: 3 * time.Millisecond, Unavailable: 0.05},
			opts: ProducerOptions{BatchRecords: 20, MaxInFlight: 16}},
		{name: "tiny batches s2", faults: clienttest.Faults{Unavailable: 0.1, LateTimeout: 0.1, MaxDelay: time.Millisecond},
			opts: ProducerOptions{BatchBytes: 200, Linger: -1, Compression: "s2"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := startFake(t, uint64(i+1), "t", 4, "none")
			srv.SetFaults(tc.faults)
			tc.opts.DeliveryTimeout = 20 * time.Second
			p, err := c.NewProducer(t.Context(), "t", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			n := 2001 // a multiple of the 3 writers: produceAll sends n/writers each
			if testing.Short() {
				n = 900
			}
			recs := produceAll(t, p, n, 3)
			checkExactlyOnce(t, srv, "t", 4, recs)
			st := p.Stats()
			if st.Records != uint64(n) || st.Errors != 0 {
				t.Fatalf("stats %+v, want %d records and no errors", st, n)
			}
			fs := srv.Stats()
			if fs.Injected > 0 && st.Retries == 0 {
				t.Fatalf("server injected %d faults but producer did not retry", fs.Injected)
			}
			t.Logf("producer %+v server %+v", st, fs)
		})
	}
}

func TestProducerDeliveryTimeoutStartsFreshEpoch(t *testing.T) {
	srv, c := startFake(t, 7, "t", 1, "none")
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{
		DeliveryTimeout: 150 * time.Millisecond, BatchRecords: 5, MaxInFlight: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var failed []Result
	for i := range 40 {
		err := p.Send(t.Context(), Message{Value: fmt.Appendf(nil, "lost%d", i), Shard: ToShard(0)}, func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, r)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, r := range failed {
		if !errors.Is(r.Err, ErrDeliveryTimeout) {
			t.Fatalf("want delivery timeout, got %v", r.Err)
		}
	}
	if len(failed) != 40 {
		t.Fatalf("%d callbacks, want 40", len(failed))
	}
	mu.Unlock()

	// A request sent just before its batch's deadline can reach the server after the
	// client gave up on it, and after the faults are off: such a record may be in the
	// log (a timed-out record may or may not be written), at most once.
	lost := make(map[string]bool)
	for i := range 40 {
		lost[fmt.Sprintf("lost%d", i)] = true
	}
	srv.SetFaults(clienttest.Faults{})
	var recs []*sent
	for i := range 30 {
		s := &sent{value: fmt.Sprintf("ok%d", i)}
		recs = append(recs, s)
		r, err := p.SendSync(t.Context(), Message{Value: []byte(s.value)})
		if err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		s.res, s.done = r, true
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnceAllowing(t, srv, "t", 1, recs, lost)
	if st := p.Stats(); st.Errors != 40 || st.Records != 30 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProducerFatalErrorFailsRecords(t *testing.T) {
	_, c := startFake(t, 3, "t", 2, "none")
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	_, err = p.SendSync(t.Context(), Message{Value: []byte("x"), Shard: ToShard(1)})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("want NotFound, got %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(t.Context(), Message{Value: []byte("x")}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestProducerSendValidation(t *testing.T) {
	_, c := startFake(t, 4, "t", 3, "none")
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{MaxInFlight: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.o.MaxInFlight != MaxMaxInFlight {
		t.Fatalf("MaxInFlight %d not clamped", p.o.MaxInFlight)
	}
	for _, shard := range []uint32{3, 100, 1<<32 - 1} {
		if err := p.Send(t.Context(), Message{Shard: ToShard(shard)}, nil); !errors.Is(err, ErrInvalidShard) {
			t.Fatalf("shard %d: want ErrInvalidShard, got %v", shard, err)
		}
	}
	if _, err := c.NewProducer(t.Context(), "missing", ProducerOptions{}); status.Code(err) != codes.NotFound {
		t.Fatalf("missing topic: %v", err)
	}
	if _, err := c.NewProducer(t.Context(), "t", ProducerOptions{Compression: "lz9"}); err == nil {
		t.Fatal("bad compression accepted")
	}
}

func TestProducerSendBlocksWhenBufferFull(t *testing.T) {
	srv, c := startFake(t, 5, "t", 1, "none")
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{MaxBufferedBytes: 1000, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*sent
	var mu sync.Mutex
	send := func(ctx context.Context, i int) error {
		s := &sent{value: fmt.Sprintf("%0100d", i)}
		err := p.Send(ctx, Message{Value: []byte(s.value), Shard: ToShard(0)}, func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			s.res, s.done = r, true
		})
		if err == nil {
			recs = append(recs, s)
		}
		return err
	}
	for i := range 8 { // 8 records of 100+24 bytes fit in 1000, a ninth does not
		if err := send(t.Context(), i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := send(ctx, 99); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want blocked send to time out, got %v", err)
	}
	srv.SetFaults(clienttest.Faults{})
	if err := send(t.Context(), 8); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	checkExactlyOnce(t, srv, "t", 1, recs)
}

func TestProducerStickyKeylessSpreads(t *testing.T) {
	srv, c := startFake(t, 6, "t", 4, "s2")
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{BatchRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*sent
	var mu sync.Mutex
	for i := range 80 {
		s := &sent{value: fmt.Sprintf("s%d", i)}
		recs = append(recs, s)
		if err := p.Send(t.Context(), Message{Value: []byte(s.value)}, func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			s.res, s.done = r, true
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	checkExactlyOnce(t, srv, "t", 4, recs)
	for sh := range uint32(4) {
		offs, _, _ := srv.Records("t", sh)
		if len(offs) != 20 {
			t.Fatalf("shard %d got %d records, want 20 (sticky batches of 10, round robin)", sh, len(offs))
		}
	}
}

func TestProducerShardForKey(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		shards uint32
		want   uint32
	}{
		{name: "empty key", key: "", shards: 8, want: 2166136261 % 8},
		{name: "a", key: "a", shards: 1000, want: 0xe40c292c % 1000},
		{name: "foobar", key: "foobar", shards: 7, want: 0xbf9cf968 % 7},
		{name: "one shard", key: "anything", shards: 1, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShardForKey([]byte(tc.key), tc.shards); got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
}

func TestProducerBackoffBounds(t *testing.T) {
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 10 * time.Millisecond, 12 * time.Millisecond},
		{2, 20 * time.Millisecond, 24 * time.Millisecond},
		{5, 160 * time.Millisecond, 192 * time.Millisecond},
		{8, time.Second, 1200 * time.Millisecond},
		{60, time.Second, 1200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.attempt), func(t *testing.T) {
			for range 20 {
				if d := backoff(tc.attempt); d < tc.lo || d > tc.hi {
					t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tc.attempt, d, tc.lo, tc.hi)
				}
			}
		})
	}
}

// TestProducerMergesQueuedBatches: batches sealed while the in-flight window is full
// go out merged (up to BatchBytes/BatchRecords), in order, each record once.
func TestProducerMergesQueuedBatches(t *testing.T) {
	srv, c := startFake(t, 99, "t", 1, "none")
	srv.SetFaults(clienttest.Faults{MaxDelay: 20 * time.Millisecond})
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{Linger: -1, MaxInFlight: 1, BatchRecords: 64})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var mu sync.Mutex
	var offsets []uint64
	for i := range n {
		err := p.Send(t.Context(), Message{Value: []byte(fmt.Sprintf("v%03d", i)), Shard: ToShard(0)}, func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil {
				t.Errorf("record %d: %v", i, r.Err)
				return
			}
			offsets = append(offsets, r.Offset)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for i, o := range offsets {
		if o != uint64(i) {
			t.Fatalf("callback %d got offset %d: records reordered or repeated", i, o)
		}
	}
	st := p.Stats()
	if st.Records != n || len(offsets) != n {
		t.Fatalf("stats %+v, %d callbacks, want %d records", st, len(offsets), n)
	}
	// One-record batches with one in flight: without merging this is 300 batches;
	// merged, at most 64 records each, so at least 5.
	if st.Batches < n/64 || st.Batches > n/4 {
		t.Fatalf("%d batches for %d one-record sends, want merged batches of up to 64", st.Batches, n)
	}
	t.Logf("stats %+v", st)
}

// TestZeroMessageRoutesByKey: a Message that names no shard goes where its key hashes,
// not to shard 0; ToShard overrides the key.
func TestZeroMessageRoutesByKey(t *testing.T) {
	_, c := startFake(t, 7, "t", 8, "none")
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	moved := 0
	for i := range 32 {
		key := fmt.Appendf(nil, "key-%d", i)
		r, err := p.SendSync(t.Context(), Message{Key: key, Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		if want := ShardForKey(key, 8); r.Shard != want {
			t.Fatalf("key %q went to shard %d, want %d", key, r.Shard, want)
		}
		if r.Shard != 0 {
			moved++
		}
		r, err = p.SendSync(t.Context(), Message{Key: key, Value: []byte("v"), Shard: ToShard(5)})
		if err != nil || r.Shard != 5 {
			t.Fatalf("ToShard(5) with key %q: shard %d, %v", key, r.Shard, err)
		}
	}
	if moved == 0 {
		t.Fatal("every key routed to shard 0")
	}
	if s := (ShardChoice{}).String(); s != "by key" {
		t.Fatalf("zero ShardChoice prints %q", s)
	}
}
