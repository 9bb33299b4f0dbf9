package crashtest

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

var (
	flagSeed     = flag.Uint64("crash.seed", 0, "seed of the crash schedule; 0 takes $SHARDLOG_CRASH_SEED, else a random seed")
	flagCycles   = flag.Int("crash.cycles", 0, "power cuts in TestCrashPowerLoss; 0 means 3 with -short, else as many as -crash.duration allows")
	flagDuration = flag.Duration("crash.duration", 2*time.Minute, "time budget of TestCrashPowerLoss without -short (ignored when -crash.cycles is set)")
)

// seed returns the run's seed and logs it.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := *flagSeed
	if s == 0 {
		if env := os.Getenv("SHARDLOG_CRASH_SEED"); env != "" {
			v, err := strconv.ParseUint(env, 10, 64)
			if err != nil {
				t.Fatalf("SHARDLOG_CRASH_SEED=%q is not an unsigned integer", env)
			}
			s = v
		}
	}
	for s == 0 {
		var b [8]byte
		_, _ = cryptorand.Read(b[:])
		s = binary.LittleEndian.Uint64(b[:]) >> 1
	}
	t.Logf("crash seed %d (replay: go test ./node/crashtest -run '^%s$' -count=1 -args -crash.seed=%d)", s, t.Name(), s)
	return s
}

// TestCrashPowerLossKeepsAcknowledgedRecords runs 3 nodes, a topic of 3 shards with
// RF 3 and two idempotent producers per epoch, cuts the power of every node at seeded
// times, restarts them, and requires every record acknowledged before a cut to be
// stored, once, intact, at its offset (see the package comment).
func TestCrashPowerLossKeepsAcknowledgedRecords(t *testing.T) {
	s := spec{nodes: 3, shards: 3, producers: 2, rate: 150, minRun: time.Second, maxRun: 3 * time.Second, cycles: 3,
		snapshotEntries: 100, earlyCuts: true}
	if !testing.Short() {
		s.minRun, s.maxRun, s.cycles, s.budget = 2*time.Second, 10*time.Second, 0, *flagDuration
	}
	if *flagCycles > 0 {
		s.cycles = *flagCycles
	}
	sd := seed(t)
	h, r := runCrash(t, sd, s)
	if r.Violations() > 0 {
		t.Errorf("seed %d: %d violations after %d power cuts: %s", sd, r.Violations(), h.cuts, r.String())
	}
	if r.Acknowledged == 0 {
		t.Errorf("seed %d: no record was acknowledged: the run proves nothing", sd)
	}
	if h.finalAcks == 0 {
		t.Errorf("seed %d: no record acknowledged after the last restart", sd)
	}
}

// TestCrashCheckFailsWhenWALSyncIsSkipped shows the test can fail: with the Raft log's
// WAL fsyncs lying during the first workload, the power cut loses records that were
// acknowledged, and the check must say so. (The segment store may have flushed some of
// them to a synced table; those survive. The workload is drained before the cut, so the
// records of the last writes, after the last flush, cannot.) What the cluster does
// after such a loss is not asserted: a segment store ahead of its Raft log is exactly
// the state a lying fsync leaves.
func TestCrashCheckFailsWhenWALSyncIsSkipped(t *testing.T) {
	s := spec{nodes: 3, shards: 3, producers: 2, rate: 150, minRun: 2 * time.Second, maxRun: 2 * time.Second,
		cycles: 1, skipWALInCycle0: true}
	sd := seed(t)
	h, r := runCrash(t, sd, s)
	_, _, skipped := h.power.Stats()
	if skipped == 0 {
		t.Fatalf("seed %d: no WAL sync was skipped: the fault did not reach dragonboat's LogDB", sd)
	}
	if r.Lost == 0 {
		t.Fatalf("seed %d: %d WAL syncs skipped, yet no acknowledged record reported lost: %s", sd, skipped, r.String())
	}
	t.Logf("seed %d: with %d WAL syncs skipped the check reported %d of %d acknowledged records lost", sd, skipped, r.Lost, r.Acknowledged)
}

// runCrash runs s with seed and returns the checker's report.
func runCrash(t *testing.T, sd uint64, s spec) (*harness, Report) {
	t.Helper()
	start := time.Now()
	rng := rand.New(rand.NewPCG(sd, sd^0x9e3779b97f4a7c15))
	h := startHarness(t, sd, s)
	more := func(k int) bool {
		if s.cycles > 0 {
			return k < s.cycles
		}
		return time.Since(start) < s.budget
	}
	for k := 0; more(k); k++ {
		cy := nextCycle(rng, s)
		if k == 0 && s.skipWALInCycle0 {
			h.power.SkipWALSync(true)
		}
		before := h.ackCount()
		stop := h.startProducers(s)
		time.Sleep(cy.run)
		if k == 0 && s.skipWALInCycle0 {
			// Let every record be acknowledged first: the segment store's last write
			// then comes after its last flush, so acknowledged records exist that only
			// the (unsynced) Raft log and segment WAL hold.
			stop()
			h.waitProducers()
			stop = func() {}
		}
		h.crash(cy.order, stop)
		h.power.SkipWALSync(false)
		t.Logf("cut %d after %v: %d acknowledged in the epoch; restarted in order %v", k+1, cy.run, h.ackCount()-before, cy.order)
	}
	// A last, uncut epoch: the cluster must serve again after the cuts.
	before := h.ackCount()
	stop := h.startProducers(s)
	time.Sleep(time.Second)
	stop()
	h.waitProducers()
	h.finalAcks = h.ackCount() - before
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	settle := ctx
	if s.skipWALInCycle0 {
		// After a lying fsync replicas may never agree again; read them as they are.
		var stop context.CancelFunc
		settle, stop = context.WithTimeout(ctx, 10*time.Second)
		defer stop()
	}
	shards, why := h.waitSettled(settle)
	if why != "" && !s.skipWALInCycle0 {
		t.Fatalf("seed %d: cluster did not settle after the last restart: %s", sd, why)
	}
	if len(shards) != s.shards {
		t.Fatalf("seed %d: topic has %d shards described, want %d (%s)", sd, len(shards), s.shards, why)
	}
	r := Check(h.history(uint32(s.shards), h.readReplicas(ctx, shards)))
	synced, dropped, skipped := h.power.Stats()
	t.Logf("seed %d: %d power cuts in %v; syncs: %d reached a disk, %d dropped by a cut, %d skipped by the fault; "+
		"unsynced bytes dropped: raft %d, segments %d; %s",
		sd, h.cuts, time.Since(start).Round(time.Second), synced, dropped, skipped, h.raftDropped, h.segDropped, r.String())
	return h, r
}
