package shard

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestShardSeqGateReleasesInOrder(t *testing.T) {
	g := newSeqGate()
	k := gateKey{shard: 16, producer: 7}
	ctx := context.Background()
	// Unknown producer: no wait.
	start := time.Now()
	g.await(ctx, k, 5, time.Second)
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("unknown producer waited")
	}
	g.proposed(k, 0, time.Now())

	// 3, 2, 1 arrive in reverse order; they must be proposed 1, 2, 3.
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for _, seq := range []uint64{3, 2, 1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.await(ctx, k, seq, 5*time.Second)
			mu.Lock()
			order = append(order, seq)
			mu.Unlock()
			g.proposed(k, seq, time.Now())
		}()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("proposed in order %v, want [1 2 3]", order)
	}

	// A retry of an old sequence passes at once; a gap waits only maxWait.
	start = time.Now()
	g.await(ctx, k, 2, time.Second)
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("retry of an older sequence waited")
	}
	start = time.Now()
	g.await(ctx, k, 9, 50*time.Millisecond)
	if d := time.Since(start); d < 40*time.Millisecond || d > time.Second {
		t.Fatalf("gap waited %v, want about 50ms", d)
	}

	g.sweep(time.Now().Add(time.Second))
	if len(g.entries) != 0 {
		t.Fatalf("sweep left %d entries", len(g.entries))
	}
}
