// Package nodetest starts real shardlog nodes in-process on 127.0.0.1 for tests:
// dragonboat, memberlist, Pebble and gRPC exactly as `shardlog server` wires them.
package nodetest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"shardlog/client"
	"shardlog/node"
)

// Cluster is N in-process nodes. Node i keeps its directory and ports across
// Stop/Restart, as a real server restarted with the same --dir would.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*node.Node
	cfgs  []node.Config
}

// Option changes every node's config before start.
type Option func(i int, c *node.Config)

// Start starts n nodes: node 0 bootstraps, the others join through node 0.
// Everything is stopped in t.Cleanup.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, nodes: make([]*node.Node, n), cfgs: make([]node.Config, n)}
	base := t.TempDir()
	level := slog.LevelWarn
	if os.Getenv("SHARDLOG_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	for i := range n {
		ports := FreePorts(t, 3)
		cfg := node.DefaultConfig()
		cfg.Dir = filepath.Join(base, fmt.Sprintf("n%d", i))
		cfg.Port, cfg.RaftPort, cfg.GossipPort = ports[0], ports[1], ports[2]
		cfg.LogDBMemory = "tiny"
		cfg.GossipFast = true
		cfg.RetentionInterval = time.Second
		cfg.Logger = log.With("test_node", i)
		if i > 0 {
			cfg.Join = []string{c.cfgs[0].ClientAddr()}
		}
		for _, o := range opts {
			o(i, &cfg)
		}
		cfg.EnsureDefaults()
		c.cfgs[i] = cfg
		c.start(i)
	}
	t.Cleanup(c.Close)
	c.WaitAlive(n, 30*time.Second)
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nd, err := node.Start(ctx, c.cfgs[i])
	if err != nil {
		c.t.Fatalf("nodetest: start node %d: %v", i, err)
	}
	c.mu.Lock()
	c.nodes[i] = nd
	c.mu.Unlock()
}

// Node returns node i (nil while stopped).
func (c *Cluster) Node(i int) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Addr is node i's client address.
func (c *Cluster) Addr(i int) string { return c.cfgs[i].ClientAddr() }

// Stop closes node i; its directory stays.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	nd := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if nd != nil {
		nd.Close()
	}
}

// Restart starts a stopped node i again from its directory (no --join needed).
// opts change its config first and stay for later restarts (a crash test hands a
// node the file systems left by a simulated power loss this way).
func (c *Cluster) Restart(i int, opts ...Option) {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.Join = nil
	for _, o := range opts {
		o(i, &cfg)
	}
	c.cfgs[i] = cfg
	c.start(i)
}

// Close stops every node.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.cfgs {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(i) }()
	}
	wg.Wait()
}

// Client dials node i.
func (c *Cluster) Client(i int) *client.Client {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, []string{c.Addr(i)}, client.Options{})
	if err != nil {
		c.t.Fatalf("nodetest: dial node %d: %v", i, err)
	}
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// WaitAlive waits until node 0's DescribeCluster shows want ALIVE nodes.
func (c *Cluster) WaitAlive(want int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		for i := range c.cfgs {
			if c.Node(i) == nil {
				continue
			}
			cl, err := client.Dial(context.Background(), []string{c.Addr(i)}, client.Options{})
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			resp, err := cl.DescribeCluster(ctx)
			cancel()
			_ = cl.Close()
			if err != nil {
				last = err.Error()
				break
			}
			alive := 0
			for _, nd := range resp.Nodes {
				if nd.State == "ALIVE" {
					alive++
				}
			}
			if alive >= want {
				return
			}
			last = fmt.Sprintf("%d of %d nodes ALIVE", alive, want)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("nodetest: cluster not ready after %v: %s", timeout, last)
}

// FreePorts returns n distinct ports free for TCP and UDP on 127.0.0.1.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var hold []net.Listener
	defer func() {
		for _, l := range hold {
			l.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("nodetest: free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			l.Close()
			continue
		}
		u.Close()
		hold = append(hold, l)
		out = append(out, p)
	}
	return out
}
