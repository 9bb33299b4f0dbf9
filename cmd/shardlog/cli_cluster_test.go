package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"shardlog/node/nodetest"
)

// TestCLILeaderlessShardOnCluster: on a real 3-node cluster with two nodes stopped, no
// shard of a replication-factor-3 topic can elect a leader. produce gives up within
// --timeout (plus the surviving node's DescribeTopic, which waits up to 2s for the
// stopped nodes) with one line naming the shard, the topic and the missing leader;
// consume says the same at once; consume --follow warns and ends on a signal.
func TestCLILeaderlessShardOnCluster(t *testing.T) {
	c := nodetest.Start(t, 3)
	addr := c.Addr(0)
	if code, out, e := cliRun(t, addr, "", "create-topic", "events", "--shards", "2", "--replication-factor", "3"); code != 0 {
		t.Fatal(out, e)
	}
	if code, out, e := cliRun(t, addr, "x\n", "produce", "events", "--shard", "1"); code != 0 {
		t.Fatal(out, e)
	}
	c.Stop(1)
	c.Stop(2)

	const timeout = 3 * time.Second
	r := runBounded(t, t.Context(), addr, strings.NewReader("y\n"), timeout+2*time.Second+slack,
		"produce", "events", "--shard", "1", "--timeout", timeout.String())
	checkOneLine(t, r, 1, "1 of 1 records not acknowledged", "shard 1 of topic events",
		"delivery timeout (3s)", "the cluster reports no leader for the shard")
	t.Logf("produce gave up after %v: %s", r.took, r.stderr)

	r = runBounded(t, t.Context(), addr, nil, timeout+slack, "consume", "events", "--timeout", timeout.String())
	checkOneLine(t, r, 1, "shard 0 of topic events: no leader reachable")
	t.Logf("consume gave up after %v: %s", r.took, r.stderr)

	ctx := interruptAfter(t, 2*timeout+2*time.Second, os.Interrupt)
	r = runBounded(t, ctx, addr, nil, 2*timeout+2*time.Second+slack, "consume", "events", "--follow", "--shard", "1", "--timeout", timeout.String())
	if r.code != 130 || !strings.Contains(r.stderr, "still retrying after") || !strings.Contains(r.stderr, "shard 1 of topic events: ") ||
		!strings.Contains(r.stderr, "no leader") || !strings.HasSuffix(r.stderr, "shardlog: interrupted by SIGINT: 0 records printed\n") {
		t.Fatalf("consume --follow: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	t.Logf("consume --follow: %s", r.stderr)
}
