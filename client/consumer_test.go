package client

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/client/clienttest"
)

// appendN stores count records "<prefix><i>" in batches of per records.
func appendN(t *testing.T, srv *clienttest.Server, topic string, shard uint32, prefix string, count, per int) {
	t.Helper()
	for i := 0; i < count; i += per {
		var recs []batch.Record
		for j := i; j < min(i+per, count); j++ {
			recs = append(recs, batch.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "%s%d", prefix, j), Timestamp: int64(j)})
		}
		if _, err := srv.Append(topic, shard, recs); err != nil {
			t.Fatal(err)
		}
	}
}

// pollUntil polls until it has n records or the deadline passes.
func pollUntil(t *testing.T, k *Consumer, n int) []Record {
	t.Helper()
	var out []Record
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		recs, err := k.Poll(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
	if len(out) != n {
		t.Fatalf("polled %d records, want %d", len(out), n)
	}
	return out
}

// checkShardRun asserts recs of one shard are values prefix<from>.. at offsets from...
func checkShardRun(t *testing.T, recs []Record, shard uint32, prefix string, from uint64) {
	t.Helper()
	next := from
	for _, r := range recs {
		if r.Shard != shard {
			continue
		}
		if r.Offset != next || string(r.Value) != fmt.Sprintf("%s%d", prefix, next) {
			t.Fatalf("shard %d: got offset %d value %s, want offset %d", shard, r.Offset, r.Value, next)
		}
		if r.Timestamp.UnixMilli() != int64(next) {
			t.Fatalf("timestamp %v", r.Timestamp)
		}
		next++
	}
}

func TestConsumerStartPositions(t *testing.T) {
	tests := []struct {
		name   string
		opts   ConsumerOptions
		shard  uint32
		from   uint64
		expect int
	}{
		{name: "earliest all shards", opts: ConsumerOptions{Start: StartEarliest}, from: 0, expect: 60},
		{name: "offset inside a batch", opts: ConsumerOptions{Shards: []uint32{1}, Start: 13}, shard: 1, from: 13, expect: 17},
		{name: "per shard start offset", opts: ConsumerOptions{Shards: []uint32{0, 0}, StartOffsets: map[uint32]uint64{0: 29}}, from: 29, expect: 1},
		{name: "tiny max bytes", opts: ConsumerOptions{Shards: []uint32{1}, Start: 1, MaxBytes: 1}, shard: 1, from: 1, expect: 29},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := startFake(t, uint64(i), "t", 2, "none")
			appendN(t, srv, "t", 0, "a", 30, 7)
			appendN(t, srv, "t", 1, "a", 30, 5)
			k, err := c.NewConsumer(t.Context(), "t", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			recs := pollUntil(t, k, tc.expect)
			checkShardRun(t, recs, tc.shard, "a", tc.from)
			if got := k.Positions()[tc.shard]; got != 30 {
				t.Fatalf("position %d, want 30", got)
			}
		})
	}
}

func TestConsumerLatestLongPoll(t *testing.T) {
	srv, c := startFake(t, 1, "t", 1, "none")
	appendN(t, srv, "t", 0, "a", 10, 3)
	k, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Start: StartLatest, MaxWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if got := k.Positions()[0]; got != 10 {
		t.Fatalf("latest position %d, want 10", got)
	}
	start := time.Now()
	recs, err := k.Poll(t.Context())
	if err != nil || len(recs) != 0 {
		t.Fatalf("empty poll: %v %v", recs, err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("poll did not wait")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		appendN(t, srv, "t", 0, "a", 3, 3) // values a0..a2 at offsets 10..12
	}()
	recs = pollUntil(t, k, 3)
	if recs[0].Offset != 10 || string(recs[2].Value) != "a2" {
		t.Fatalf("got %+v", recs)
	}
}

func TestConsumerOutOfRange(t *testing.T) {
	t.Run("resets to log start", func(t *testing.T) {
		srv, c := startFake(t, 2, "t", 1, "none")
		appendN(t, srv, "t", 0, "a", 20, 5)
		if err := srv.Truncate("t", 0, 12); err != nil {
			t.Fatal(err)
		}
		k, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Start: 0})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		recs := pollUntil(t, k, 10)
		checkShardRun(t, recs, 0, "a", 10)
	})
	t.Run("strict fails", func(t *testing.T) {
		srv, c := startFake(t, 3, "t", 1, "none")
		appendN(t, srv, "t", 0, "a", 5, 5)
		k, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Start: 9, Strict: true, MaxWait: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			_, err = k.Poll(t.Context())
			if err != nil {
				break
			}
		}
		if !errors.Is(err, ErrOutOfRange) || status.Code(err) != codes.OutOfRange {
			t.Fatalf("want ErrOutOfRange, got %v", err)
		}
	})
}

func TestConsumerTopicDeletedFails(t *testing.T) {
	_, c := startFake(t, 4, "t", 1, "none")
	k, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{MaxWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := c.DeleteTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = k.Poll(t.Context()); err != nil {
			break
		}
	}
	if status.Code(err) != codes.NotFound {
		t.Fatalf("want NotFound, got %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Poll(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("poll after close: %v", err)
	}
}

func TestConsumerValidation(t *testing.T) {
	_, c := startFake(t, 5, "t", 2, "none")
	if _, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Shards: []uint32{2}}); !errors.Is(err, ErrInvalidShard) {
		t.Fatalf("want ErrInvalidShard, got %v", err)
	}
	if _, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Start: -3}); err == nil {
		t.Fatal("start -3 accepted")
	}
	if _, err := c.NewConsumer(t.Context(), "nope", ConsumerOptions{}); status.Code(err) != codes.NotFound {
		t.Fatalf("missing topic: %v", err)
	}
}

func TestConsumerReadsWhatProducerWrote(t *testing.T) {
	srv, c := startFake(t, 6, "t", 3, "zstd")
	srv.SetFaults(clienttest.Faults{Unavailable: 0.1, LateTimeout: 0.1})
	p, err := c.NewProducer(t.Context(), "t", ProducerOptions{BatchRecords: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		err := p.Send(t.Context(), Message{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "%d", i),
			Headers: []batch.Header{{Key: "h", Value: []byte("x")}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	k, err := c.NewConsumer(t.Context(), "t", ConsumerOptions{Start: StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	recs := pollUntil(t, k, 300)
	last := map[string]int{}
	for _, r := range recs {
		var i int
		fmt.Sscan(string(r.Value), &i)
		if l, ok := last[string(r.Key)]; ok && i <= l {
			t.Fatalf("key %s: %d after %d", r.Key, i, l)
		}
		last[string(r.Key)] = i
		if len(r.Headers) != 1 || r.Headers[0].Key != "h" {
			t.Fatalf("headers %+v", r.Headers)
		}
	}
}
