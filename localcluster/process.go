package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

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
	return c.WaitMembers(ctx)
}

// StartNode starts node i's process (again) with its fixed arguments; its output goes
// to Config.Stdout and Stderr, or is appended to <dir>/<name>.log.
func (c *Cluster) StartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if c.runningLocked(n) {
		return fmt.Errorf("localcluster: %s is already running (pid %d)", n.Name, n.cmd.Process.Pid)
	}
	name, args := c.cfg.Binary, n.args
	if c.cfg.Net != nil {
		name, args = c.cfg.Net.Wrap(i, name, args)
	}
	cmd := exec.Command(name, args...)
	// Own process group: a Ctrl-C in the terminal reaches only the harness, which then
	// stops the nodes itself. Pdeathsig kills the nodes if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	drain, err := c.attachOutput(cmd, n.Name)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		drain()
		return fmt.Errorf("localcluster: start %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		drain() // NB: all reads from the pipes must end before Wait (os/exec)
		err := cmd.Wait()
		c.mu.Lock()
		n.waitErr = err
		c.mu.Unlock()
		close(done)
	}()
	n.cmd, n.done, n.paused, n.waitErr = cmd, done, false, nil
	c.log.Debug("node started", "node", n.Name, "pid", cmd.Process.Pid, "addr", n.Addr)
	return nil
}

// attachOutput points cmd's output at the node's log file, or at prefixed copies to
// Config.Stdout and Stderr. The returned func waits until the output is copied and
// closes the file; it is to be called once, after the process was started (or failed
// to start).
func (c *Cluster) attachOutput(cmd *exec.Cmd, name string) (func(), error) {
	if c.cfg.Stdout == nil {
		if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("localcluster: %s log: %w", name, err)
		}
		logf, err := os.OpenFile(filepath.Join(c.cfg.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("localcluster: %s log: %w", name, err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		return func() { _ = logf.Close() }, nil
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("localcluster: %s stdout: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("localcluster: %s stderr: %w", name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go prefixLines(&wg, name, stdout, c.cfg.Stdout)
	go prefixLines(&wg, name, stderr, c.cfg.Stderr)
	return wg.Wait, nil
}

// prefixLines copies r to w line by line, each line prefixed with "[name] ".
func prefixLines(wg *sync.WaitGroup, name string, r io.Reader, w io.Writer) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "[%s] %s\n", name, sc.Text())
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB ends the scan; do not block the node
}

// Running reports whether node i's process is alive (paused counts as alive).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked(c.nodes[i])
}

// Paused reports whether node i's process was frozen with Pause and not resumed.
func (c *Cluster) Paused(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].paused && c.runningLocked(c.nodes[i])
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

// PID returns the operating-system process ID of node i's current process, or 0 when
// the node has never been started or its process has exited.
func (c *Cluster) PID(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if !c.runningLocked(n) {
		return 0
	}
	return n.cmd.Process.Pid
}

// Exited returns a channel that is closed when node i's current process has exited
// (nil when it was never started), and a func that then returns how it exited (the
// error of exec.Cmd.Wait).
func (c *Cluster) Exited(i int) (<-chan struct{}, func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	return n.done, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		return n.waitErr
	}
}

// Kill sends SIGKILL to node i's process (by its PID) and waits until it is gone.
func (c *Cluster) Kill(i int) error {
	return c.end(i, syscall.SIGKILL, time.Now().Add(10*time.Second))
}

// end sends sig to node i's process and waits until it is gone or deadline passes.
func (c *Cluster) end(i int, sig syscall.Signal, deadline time.Time) error {
	c.mu.Lock()
	n := c.nodes[i]
	if !c.runningLocked(n) {
		c.mu.Unlock()
		return nil
	}
	err := n.cmd.Process.Signal(sig)
	done := n.done
	if sig == syscall.SIGKILL {
		n.paused = false
	}
	c.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localcluster: signal %s with %s: %w", n.Name, sig, err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("localcluster: %s did not exit after %s", n.Name, sig)
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
		return fmt.Errorf("localcluster: %s is not running", n.Name)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("localcluster: signal %s: %w", n.Name, err)
	}
	n.paused = paused
	return nil
}

// Stop sends SIGTERM to every running node (continuing paused ones first), so that
// they shut down cleanly, waits up to grace for all of them, then kills what is left.
func (c *Cluster) Stop(grace time.Duration) error {
	c.continueAll()
	deadline := time.Now().Add(grace)
	var errs []error
	for i := range c.nodes {
		c.mu.Lock()
		if n := c.nodes[i]; c.runningLocked(n) {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
		c.mu.Unlock()
	}
	for i := range c.nodes {
		if c.end(i, syscall.SIGTERM, deadline) != nil {
			errs = append(errs, c.Kill(i))
		}
	}
	return errors.Join(errs...)
}

// Close kills every node process by its PID (continuing paused ones first) and waits
// for them to exit. It does not remove the directory.
func (c *Cluster) Close() error {
	c.continueAll()
	var errs []error
	for i := range c.nodes {
		errs = append(errs, c.Kill(i))
	}
	return errors.Join(errs...)
}

// continueAll sends SIGCONT to every running node, so that a paused one can handle
// the signal that ends it.
func (c *Cluster) continueAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if c.runningLocked(n) {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
			n.paused = false
		}
	}
}
