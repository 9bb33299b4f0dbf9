package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"shardlog/ids"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testNode is a running Gossip plus a recorder of its events.
type testNode struct {
	*Gossip
	mu     sync.Mutex
	events []Event
	done   chan struct{}
}

// eventsFor returns the states this node reported for id, in order.
func (n *testNode) eventsFor(id ids.NodeID) []State {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []State
	for _, ev := range n.events {
		if ev.NodeID == id {
			out = append(out, ev.State)
		}
	}
	return out
}

// testLog buffers debug logs of all nodes in a test and prints the last
// lines if the test fails. Writes after the test ended are dropped:
// memberlist's own goroutines (suspicion timers, connection handlers) may
// still log after Shutdown returns.
type testLog struct {
	mu    sync.Mutex
	lines []string
	done  bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.lines = append(w.lines, string(p))
	}
	return len(p), nil
}

var testLogs sync.Map // *testing.T -> *slog.Logger

// testLogger returns the test's shared logger.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if l, ok := testLogs.Load(t); ok {
		return l.(*slog.Logger)
	}
	w := &testLog{}
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	testLogs.Store(t, l)
	t.Cleanup(func() {
		testLogs.Delete(t)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
		if t.Failed() {
			const tail = 300
			start := max(0, len(w.lines)-tail)
			for _, line := range w.lines[start:] {
				t.Log(strings.TrimRight(line, "\n"))
			}
		}
	})
	return l
}

// startNode starts a Fast gossip node on 127.0.0.1; port 0 picks a free
// port. Shutdown runs at cleanup (a second Shutdown is harmless).
func startNode(t *testing.T, id ids.NodeID, port int, seeds func() []string) *testNode {
	t.Helper()
	g, err := Start(Config{
		NodeID:   id,
		BindAddr: "127.0.0.1",
		BindPort: port,
		Meta:     NodeMeta{ClientAddr: fmt.Sprintf("127.0.0.1:%d", 7400+id), Zone: "z" + strconv.FormatUint(uint64(id), 10)},
		Logger:   testLogger(t),
		Fast:     true,
		Seeds:    seeds,
	})
	if err != nil {
		t.Fatalf("start node %d: %v", id, err)
	}
	n := &testNode{Gossip: g, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		for ev := range g.Events() {
			n.mu.Lock()
			n.events = append(n.events, ev)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if err := g.Shutdown(); err != nil {
			t.Errorf("shutdown node %d: %v", id, err)
		}
		<-n.done
	})
	return n
}

// port returns the gossip port a node bound.
func port(t *testing.T, n *testNode) int {
	t.Helper()
	_, p, err := net.SplitHostPort(n.Addr())
	if err != nil {
		t.Fatalf("split %q: %v", n.Addr(), err)
	}
	v, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port %q: %v", p, err)
	}
	return v
}

// waitFor polls cond every 20 ms until it holds or timeout passes; the
// optional diag functions describe the state on failure.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, diag ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range diag {
				t.Log(d())
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func join(t *testing.T, n *testNode, to ...*testNode) {
	t.Helper()
	var addrs []string
	for _, o := range to {
		addrs = append(addrs, o.Addr())
	}
	if _, err := n.Join(addrs); err != nil {
		t.Fatalf("node %d join %v: %v", n.LocalID(), addrs, err)
	}
}

// startCluster starts nodes 1..size and joins them to node 1.
func startCluster(t *testing.T, size int) []*testNode {
	t.Helper()
	nodes := make([]*testNode, size)
	for i := range nodes {
		nodes[i] = startNode(t, ids.NodeID(i+1), 0, nil)
		if i > 0 {
			join(t, nodes[i], nodes[0])
		}
	}
	waitAllAlive(t, nodes...)
	return nodes
}

// waitAllAlive waits until every node sees exactly the given nodes ALIVE.
func waitAllAlive(t *testing.T, nodes ...*testNode) {
	t.Helper()
	var want []ids.NodeID
	for _, n := range nodes {
		want = append(want, n.LocalID())
	}
	slices.Sort(want)
	for _, n := range nodes {
		waitFor(t, 8*time.Second, fmt.Sprintf("node %d to see %v alive", n.LocalID(), want), func() bool {
			return slices.Equal(n.AliveIDs(), want)
		}, func() string { return fmt.Sprintf("members: %+v", n.Members()) })
	}
}

func waitState(t *testing.T, n *testNode, id ids.NodeID, want State) {
	t.Helper()
	waitFor(t, 6*time.Second, fmt.Sprintf("node %d to see node %d %s", n.LocalID(), id, want), func() bool {
		return n.State(id) == want
	})
}

func TestGossipThreeMembersSeeEachOtherAliveWithMeta(t *testing.T) {
	nodes := startCluster(t, 3)
	for _, n := range nodes {
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("node %d: %d members, want 3", n.LocalID(), len(ms))
		}
		for i, m := range ms {
			want := nodes[i]
			if m.NodeID != want.LocalID() || m.State != StateAlive || m.Addr != want.Addr() {
				t.Errorf("node %d sees %+v, want ID %d ALIVE at %s", n.LocalID(), m, want.LocalID(), want.Addr())
			}
			wantMeta := NodeMeta{ClientAddr: fmt.Sprintf("127.0.0.1:%d", 7400+m.NodeID), Zone: fmt.Sprintf("z%d", m.NodeID)}
			if m.Meta != wantMeta {
				t.Errorf("node %d sees meta %+v for %d, want %+v", n.LocalID(), m.Meta, m.NodeID, wantMeta)
			}
		}
		if got := n.State(99); got != "" {
			t.Errorf("State(unknown) = %q, want empty", got)
		}
	}
}

func TestGossipUpdateMetaReachesPeers(t *testing.T) {
	nodes := startCluster(t, 2)
	want := NodeMeta{ClientAddr: "10.0.0.9:7400", Zone: "east"}
	if err := nodes[0].UpdateMeta(want); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	waitFor(t, 5*time.Second, "new meta on node 2", func() bool {
		m, ok := nodes[1].Member(1)
		return ok && m.Meta == want && m.State == StateAlive
	})
	if err := nodes[0].UpdateMeta(NodeMeta{Zone: string(make([]byte, 600))}); err == nil {
		t.Fatal("UpdateMeta accepted 600-byte metadata")
	}
}

func TestGossipShutdownSuspectThenDeadThenRestartAlive(t *testing.T) {
	nodes := startCluster(t, 3)
	victim := nodes[2]
	id, vport := victim.LocalID(), port(t, victim)
	if err := victim.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, n := range nodes[:2] {
		waitState(t, n, id, StateDead)
		waitFor(t, 2*time.Second, "DEAD event", func() bool { return slices.Contains(n.eventsFor(id), StateDead) })
	}
	for _, n := range nodes[:2] {
		seq := n.eventsFor(id)
		s, d := slices.Index(seq, StateSuspect), slices.Index(seq, StateDead)
		if s < 0 || d < s {
			t.Errorf("node %d saw %v for node %d, want SUSPECT before DEAD", n.LocalID(), seq, id)
		}
		if got := n.AliveIDs(); !slices.Equal(got, []ids.NodeID{1, 2}) {
			t.Errorf("node %d AliveIDs = %v, want [1 2]", n.LocalID(), got)
		}
	}

	restarted := startNode(t, id, vport, nil)
	join(t, restarted, nodes[0])
	waitAllAlive(t, nodes[0], nodes[1], restarted)
	for _, n := range nodes[:2] {
		waitFor(t, 2*time.Second, "ALIVE event after DEAD", func() bool {
			seq := n.eventsFor(id)
			return slices.Contains(seq[slices.Index(seq, StateDead):], StateAlive)
		})
	}
}

func TestGossipLeaveIsLeft(t *testing.T) {
	nodes := startCluster(t, 3)
	leaver := nodes[2]
	if err := leaver.Leave(2 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if got := leaver.State(leaver.LocalID()); got != StateLeft {
		t.Errorf("leaver sees itself %q, want LEFT", got)
	}
	if err := leaver.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, n := range nodes[:2] {
		waitState(t, n, leaver.LocalID(), StateLeft)
	}
	// LEFT must stay LEFT: the silent process must not turn into DEAD.
	time.Sleep(time.Second)
	for _, n := range nodes[:2] {
		if got := n.State(leaver.LocalID()); got != StateLeft {
			t.Errorf("node %d sees leaver %q after a while, want LEFT", n.LocalID(), got)
		}
	}
}

func TestGossipSeedsRejoinAfterEmptyStart(t *testing.T) {
	nodes := startCluster(t, 2)
	var seeds atomic.Pointer[[]string]
	seeds.Store(&[]string{})
	late := startNode(t, 3, 0, func() []string { return *seeds.Load() })
	time.Sleep(700 * time.Millisecond) // at least one rejoin round with no seeds
	if got := late.AliveIDs(); !slices.Equal(got, []ids.NodeID{3}) {
		t.Fatalf("late node sees %v before seeds exist, want only itself", got)
	}
	seeds.Store(&[]string{nodes[1].Addr(), late.Addr()})
	waitAllAlive(t, nodes[0], nodes[1], late)
}

func TestGossipSeedsHealRestartedNode(t *testing.T) {
	nodes := startCluster(t, 2)
	seeds := func() []string { return []string{nodes[0].Addr()} }
	n3 := startNode(t, 3, 0, seeds)
	waitAllAlive(t, nodes[0], nodes[1], n3)
	p := port(t, n3)
	if err := n3.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitState(t, nodes[1], 3, StateDead)
	restarted := startNode(t, 3, p, seeds) // no Join: the rejoin loop heals it
	waitAllAlive(t, nodes[0], nodes[1], restarted)
}

func TestGossipClosedAfterShutdown(t *testing.T) {
	n := startNode(t, 1, 0, nil)
	if err := n.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := n.Shutdown(); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	if err := n.Leave(time.Second); err != ErrShutdown {
		t.Errorf("Leave after shutdown = %v, want ErrShutdown", err)
	}
	if err := n.UpdateMeta(NodeMeta{}); err != ErrShutdown {
		t.Errorf("UpdateMeta after shutdown = %v, want ErrShutdown", err)
	}
	if _, err := n.Join([]string{"127.0.0.1:1"}); err != ErrShutdown {
		t.Errorf("Join after shutdown = %v, want ErrShutdown", err)
	}
	select {
	case <-n.done:
	case <-time.After(time.Second):
		t.Fatal("Events not closed by Shutdown")
	}
}
