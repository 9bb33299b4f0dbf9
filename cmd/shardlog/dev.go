package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"shardlog/localcluster"
)

// devStopGrace is how long `shardlog dev` gives its nodes to shut down after SIGTERM
// before it kills them.
const devStopGrace = 15 * time.Second

// runDev starts a local cluster (3 nodes by default) as `shardlog server` child
// processes, so any of them can be killed and restarted like a real node. It runs
// until ctx ends (Ctrl-C) or every node has exited, then stops the nodes.
func runDev(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", "data/dev", "parent directory of the nodes' data directories")
	nodes := fs.Int("nodes", 3, "number of nodes")
	basePort := fs.Int("port", 7400, "client port of the first node; node i uses port+10*i, +1 Raft, +2 gossip")
	logLevel := fs.String("log-level", "warn", "server log level")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *nodes < 1 || *nodes > 9 {
		return fmt.Errorf("--nodes %d must be 1..9", *nodes)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("dev: find this executable: %w", err)
	}
	c, err := localcluster.New(localcluster.Config{Binary: exe, Nodes: *nodes, Dir: *dir, LogLevel: *logLevel,
		BasePort: *basePort, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if err := startDev(ctx, c); err != nil {
		_ = c.Stop(devStopGrace)
		return err
	}
	printDevBanner(e.stdout, c, *dir, *basePort)
	watchDev(ctx, c, e.stderr, func(i int) string {
		return fmt.Sprintf("%s server --dir %s --port %d", exe, c.Nodes()[i].Dir, *basePort+10*i)
	})
	return c.Stop(devStopGrace)
}

// startDev starts every node; the others join through the first, which must serve
// within 60 s.
func startDev(ctx context.Context, c *localcluster.Cluster) error {
	for i, n := range c.Nodes() {
		if err := c.StartNode(i); err != nil {
			return err
		}
		if i == 0 {
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			err := c.WaitServing(wctx, 0)
			cancel()
			if err != nil {
				return fmt.Errorf("%s did not start: %w", n.Name, err)
			}
		}
	}
	return nil
}

func printDevBanner(w io.Writer, c *localcluster.Cluster, dir string, basePort int) {
	fmt.Fprintf(w, `
shardlog dev cluster: %d nodes, data under %s
  nodes: `, len(c.Nodes()), dir)
	for i, n := range c.Nodes() {
		fmt.Fprintf(w, "%s (pid %d)  ", n.Addr, c.PID(i))
	}
	fmt.Fprintf(w, `
  try, in another terminal:
    ./bin/shardlog create-topic events --shards 8 --replication-factor 3
    seq 1 20000 | ./bin/shardlog produce events
    ./bin/shardlog consume events --from-beginning --server 127.0.0.1:%d | wc -l
    ./bin/shardlog dump
  Ctrl-C stops every node; the next run keeps the data.

`, basePort+20)
}

// watchDev waits until ctx ends or every node has exited. A node that dies (or is
// killed to try failover) is reported on w, not restarted: the others keep serving,
// and the message says how to bring it back (restart(i) is its command line).
func watchDev(ctx context.Context, c *localcluster.Cluster, w io.Writer, restart func(i int) string) {
	exited := make(chan string, len(c.Nodes()))
	for i, n := range c.Nodes() {
		done, exitErr := c.Exited(i)
		pid := c.PID(i)
		go func() {
			select {
			case <-done:
				exited <- fmt.Sprintf("%s (pid %d) exited (%v); restart it with: %s", n.Name, pid, exitErr(), restart(i))
			case <-ctx.Done():
			}
		}()
	}
	for alive := len(c.Nodes()); alive > 0 && ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case msg := <-exited:
			alive--
			fmt.Fprintln(w, "dev:", msg)
		}
	}
}
