package localcluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
)

// Network places the nodes on addresses of their own and wraps their command lines,
// e.g. to run each node in its own network namespace (chaos.Netns).
type Network interface {
	// Addr is node i's host address; the node listens on ports 7400 to 7402 there.
	Addr(i int) string
	// Wrap returns the command line that runs name with args as node i.
	Wrap(i int, name string, args []string) (string, []string)
}

// Config describes the cluster of real `shardlog server` processes to start.
type Config struct {
	// Binary is the path of the shardlog binary.
	Binary string
	// Nodes is the number of server processes.
	Nodes int
	// Dir is the parent of the nodes' data directories (Dir/n1, Dir/n2, ...) and, when
	// Stdout is nil, of their logs (Dir/n1.log, ...); it need not exist.
	Dir string
	// MetaVoters is passed as --meta-voters (0: the server's default).
	MetaVoters int
	// LogLevel is the servers' --log-level. Default "info".
	LogLevel string
	// Net places the nodes on the network; nil runs them all on 127.0.0.1 (with
	// BasePort, or free ports).
	Net Network
	// BasePort, when above 0 (and Net is nil), gives node i the client port
	// BasePort+10*i, its Raft port +1 and its gossip port +2. 0 picks free ports.
	BasePort int
	// Stdout, when set, receives every node's standard output line by line, each line
	// prefixed with "[n1] "; Stderr likewise its standard error (nil: Stdout). When
	// Stdout is nil both are appended to Dir/<name>.log.
	Stdout, Stderr io.Writer
	// Logger receives the harness's lines about processes. Default slog.Default().
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

	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exited
	waitErr error         // cmd.Wait's error, set before done is closed
	paused  bool
}

// Cluster runs and injects process faults into a set of server processes. Its methods
// are safe for concurrent use.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	nodes []*Node

	mu sync.Mutex // guards every Node's cmd, done, waitErr and paused
}

// New prepares (but does not start) cfg.Nodes nodes: data directories under cfg.Dir
// and ports (BasePort, free ones on 127.0.0.1, or the network's addresses).
func New(cfg Config) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, errors.New("localcluster: need at least one node")
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stdout != nil && cfg.Stderr == nil {
		cfg.Stderr = cfg.Stdout
	}
	hosts, ports, err := placeNodes(cfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger}
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

// placeNodes returns every node's host and its client, Raft and gossip ports.
func placeNodes(cfg Config) ([]string, [][3]int, error) {
	var hosts []string
	var ports [][3]int
	switch {
	case cfg.Net != nil:
		for i := range cfg.Nodes {
			hosts = append(hosts, cfg.Net.Addr(i))
			ports = append(ports, [3]int{7400, 7401, 7402})
		}
	case cfg.BasePort > 0:
		for i := range cfg.Nodes {
			p := cfg.BasePort + 10*i
			hosts = append(hosts, "127.0.0.1")
			ports = append(ports, [3]int{p, p + 1, p + 2})
		}
	default:
		free, err := freePorts(3 * cfg.Nodes)
		if err != nil {
			return nil, nil, err
		}
		for i := range cfg.Nodes {
			hosts = append(hosts, "127.0.0.1")
			ports = append(ports, [3]int{free[3*i], free[3*i+1], free[3*i+2]})
		}
	}
	return hosts, ports, nil
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
			return nil, fmt.Errorf("localcluster: find a free port: %w", err)
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
		return nil, errors.New("localcluster: not enough free ports")
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
