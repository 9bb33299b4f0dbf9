package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"shardlog/proto/shardlogv1"
)

// ClusterConfig describes the cluster of real `shardlog server` processes to start.
type ClusterConfig struct {
	// Binary is the path of the shardlog binary.
	Binary string
	// Nodes is the number of server processes.
	Nodes int
	// Dir is the parent of the nodes' data directories and logs; it must exist.
	Dir string
	// MetaVoters is passed as --meta-voters (0: the server's default).
	MetaVoters int
	// LogLevel is the servers' --log-level. Default "info".
	LogLevel string
	// Net places the nodes on the network; nil runs them all on 127.0.0.1 with free ports.
	Net *Netns
	// Logger receives the harness's lines about processes.
	Logger *slog.Logger
	// ExtraArgs are appended to every server's command line (e.g. "--quiesce").
	ExtraArgs []string
}

// Node is one server process of a Cluster. Its fields are fixed at creation; the process
// state is guarded by the Cluster.
type Node struct {
	// Name is n1, n2, ...
	Name string
	// Addr is the client address host:port.
	Addr string
	// Dir is the node's data directory.
	Dir  string
	args []string

	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd exited
	paused bool
}

// Cluster runs and injects process faults into a set of server processes. Its methods
// are safe for concurrent use.
type Cluster struct {
	cfg   ClusterConfig
	log   *slog.Logger
	nodes []*Node

	mu sync.Mutex // guards every Node's cmd, done and paused
}

// NewCluster prepares (but does not start) cfg.Nodes nodes: data directories under
// cfg.Dir and ports (free ones on 127.0.0.1, or the namespaces' addresses).
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("%w: need at least one node", ErrUsage)
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger}
	var hosts []string
	var ports [][3]int
	if cfg.Net != nil {
		for i := range cfg.Nodes {
			hosts = append(hosts, cfg.Net.Addr(i))
			ports = append(ports, [3]int{7400, 7401, 7402})
		}
	} else {
		free, err := freePorts(3 * cfg.Nodes)
		if err != nil {
			return nil, err
		}
		for i := range cfg.Nodes {
			hosts = append(hosts, "127.0.0.1")
			ports = append(ports, [3]int{free[3*i], free[3*i+1], free[3*i+2]})
		}
	}
	for i := range cfg.Nodes {
		n := &Node{Name: fmt.Sprintf("n%d", i+1), Dir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1))}
		n.Addr = net.JoinHostPort(hosts[i], strconv.Itoa(ports[i][0]))
		n.args = []string{"server", "--dir", n.Dir, "--host", hosts[i],
			"--port", strconv.Itoa(ports[i][0]), "--raft-port", strconv.Itoa(ports[i][1]),
			"--gossip-port", strconv.Itoa(ports[i][2]), "--log-level", cfg.LogLevel}
		if cfg.MetaVoters > 0 {
			n.args = append(n.args, "--meta-voters", strconv.Itoa(cfg.MetaVoters))
		}
		if i > 0 {
			n.args = append(n.args, "--join", net.JoinHostPort(hosts[0], strconv.Itoa(ports[0][0])))
		}
		n.args = append(n.args, cfg.ExtraArgs...)
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// freePorts returns n distinct ports that are free for TCP and UDP on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for tries := 0; len(out) < n && tries < 50*n; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("chaos: find a free port: %w", err)
		}
		ls = append(ls, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = u.Close()
		out = append(out, port)
	}
	if len(out) < n {
		return nil, errors.New("chaos: not enough free ports")
	}
	return out, nil
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Addrs returns every node's client address.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr
	}
	return out
}

// Start starts the first node, waits until it serves, then starts the others one by one
// (they join through the first), and waits until every node is registered and ALIVE.
func (c *Cluster) Start(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := range c.nodes {
		if err := c.StartNode(i); err != nil {
			return err
		}
		if err := c.WaitServing(ctx, i); err != nil {
			return err
		}
	}
	return c.waitMembers(ctx)
}

// StartNode starts node i's process (again) with its fixed arguments; its output is
// appended to <dir>/<name>.log.
func (c *Cluster) StartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("chaos: %s is already running (pid %d)", n.Name, n.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(filepath.Join(c.cfg.Dir, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: %s log: %w", n.Name, err)
	}
	name, args := c.cfg.Binary, n.args
	if c.cfg.Net != nil {
		name, args = c.cfg.Net.Wrap(i, name, args)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches only the harness, which then
	// stops the nodes itself. Pdeathsig kills the nodes if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("chaos: start %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	n.cmd, n.done, n.paused = cmd, done, false
	c.log.Debug("node started", "node", n.Name, "pid", cmd.Process.Pid, "addr", n.Addr)
	return nil
}

// Running reports whether node i's process is alive (paused counts as alive).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked(c.nodes[i])
}

func (c *Cluster) runningLocked(n *Node) bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to node i's process (by its PID) and waits until it is gone.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	n := c.nodes[i]
	if !c.runningLocked(n) {
		c.mu.Unlock()
		return nil
	}
	err := n.cmd.Process.Signal(syscall.SIGKILL)
	done := n.done
	n.paused = false
	c.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: kill %s: %w", n.Name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("chaos: %s did not exit after SIGKILL", n.Name)
	}
}

// Pause freezes node i with SIGSTOP.
func (c *Cluster) Pause(i int) error { return c.signal(i, syscall.SIGSTOP, true) }

// Resume continues node i with SIGCONT.
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, false) }

func (c *Cluster) signal(i int, sig syscall.Signal, paused bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if !c.runningLocked(n) {
		return fmt.Errorf("chaos: %s is not running", n.Name)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("chaos: signal %s: %w", n.Name, err)
	}
	n.paused = paused
	return nil
}

// Heal resumes every paused node and starts every node that is not running.
func (c *Cluster) Heal() error {
	var errs []error
	for i, n := range c.nodes {
		c.mu.Lock()
		paused, running := n.paused, c.runningLocked(n)
		c.mu.Unlock()
		switch {
		case paused:
			errs = append(errs, c.Resume(i))
		case !running:
			errs = append(errs, c.StartNode(i))
		}
	}
	return errors.Join(errs...)
}

// WaitServing waits until node i answers DescribeCluster, or ctx ends.
func (c *Cluster) WaitServing(ctx context.Context, i int) error {
	n := c.nodes[i]
	for {
		if !c.Running(i) {
			return fmt.Errorf("chaos: %s exited while starting (see %s.log)", n.Name, n.Name)
		}
		if _, err := c.describe(ctx, i, time.Second); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s not serving at %s: %w", n.Name, n.Addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describe asks node i for the cluster description.
func (c *Cluster) describe(ctx context.Context, i int, timeout time.Duration) (*shardlogv1.DescribeClusterResponse, error) {
	cc, err := grpc.NewClient(c.nodes[i].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return shardlogv1.NewAdminClient(cc).DescribeCluster(ctx, &shardlogv1.DescribeClusterRequest{})
}

// waitMembers waits until the last node sees every node registered and ALIVE.
func (c *Cluster) waitMembers(ctx context.Context) error {
	last := len(c.nodes) - 1
	var seen string
	for {
		resp, err := c.describe(ctx, last, 2*time.Second)
		if err == nil {
			alive := 0
			for _, n := range resp.GetNodes() {
				if n.GetState() == "ALIVE" {
					alive++
				}
			}
			if alive >= len(c.nodes) && resp.GetMetaLeaderNodeId() != 0 {
				return nil
			}
			seen = fmt.Sprintf("%d of %d nodes ALIVE", alive, len(c.nodes))
		} else {
			seen = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: cluster did not form (%s): %w", seen, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close kills every node process by its PID (continuing paused ones first) and waits
// for them to exit. It does not remove the directory.
func (c *Cluster) Close() error {
	var errs []error
	for i := range c.nodes {
		c.mu.Lock()
		n := c.nodes[i]
		if c.runningLocked(n) {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
		c.mu.Unlock()
		errs = append(errs, c.Kill(i))
	}
	return errors.Join(errs...)
}
