package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shardlog/localcluster/localclustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	localclustertest.Cleanup()
	os.Exit(code)
}

func shardlogBinary(t *testing.T) string { return localclustertest.Binary(t, "SHARDLOG_BINARY") }

func TestClusterBasePortPlacesNodesTenApart(t *testing.T) {
	c, err := New(Config{Binary: "/bin/true", Nodes: 3, Dir: t.TempDir(), BasePort: 7600})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:7600", "127.0.0.1:7610", "127.0.0.1:7620"}; !slices.Equal(c.Addrs(), want) {
		t.Fatalf("addrs %v, want %v", c.Addrs(), want)
	}
	args := strings.Join(c.Nodes()[2].args, " ")
	for _, want := range []string{"--port 7620", "--raft-port 7621", "--gossip-port 7622", "--join 127.0.0.1:7600", "--log-level info"} {
		if !strings.Contains(args, want) {
			t.Errorf("n3 args %q lack %q", args, want)
		}
	}
	if _, err := New(Config{Binary: "/bin/true"}); err == nil {
		t.Error("New with no nodes succeeded")
	}
}

// TestClusterKillPauseRestart starts 3 servers, freezes, continues, kills and restarts
// one, and closes the cluster: no process is left.
func TestClusterKillPauseRestart(t *testing.T) {
	bin := shardlogBinary(t)
	dir := t.TempDir()
	c, err := New(Config{Binary: bin, Nodes: 3, Dir: dir, LogLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	pid := c.PID(1)
	if pid <= 0 || !c.Running(1) {
		t.Fatalf("n2 pid %d, running %v", pid, c.Running(1))
	}
	if err := c.Pause(1); err != nil {
		t.Fatal(err)
	}
	if !c.Paused(1) {
		t.Error("n2 not paused after Pause")
	}
	if err := waitState(pid, 'T'); err != nil {
		t.Error(err)
	}
	if err := c.Resume(1); err != nil {
		t.Fatal(err)
	}
	if c.Paused(1) {
		t.Error("n2 paused after Resume")
	}
	if err := c.Kill(1); err != nil {
		t.Fatal(err)
	}
	if c.Running(1) || c.PID(1) != 0 {
		t.Fatalf("n2 running %v, pid %d after Kill", c.Running(1), c.PID(1))
	}
	if err := c.Pause(1); err == nil {
		t.Error("Pause of a killed node succeeded")
	}
	if err := c.StartNode(1); err != nil {
		t.Fatal(err)
	}
	if err := c.StartNode(1); err == nil {
		t.Error("StartNode of a running node succeeded")
	}
	if err := c.WaitServing(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(ctx); err != nil {
		t.Fatal(err)
	}
	pids := []int{c.PID(0), c.PID(1), c.PID(2)}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i, p := range pids {
		if c.Running(i) || processExists(p) {
			t.Errorf("n%d (pid %d) still running after Close", i+1, p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n2.log")); err != nil {
		t.Error(err)
	}
}

// TestClusterStopPrefixesOutput runs one server with its output sent to a writer and
// stops it with SIGTERM: every line carries the node's name and the server exits
// cleanly within the grace period.
func TestClusterStopPrefixesOutput(t *testing.T) {
	bin := shardlogBinary(t)
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	c, err := New(Config{Binary: bin, Nodes: 1, Dir: filepath.Join(t.TempDir(), "new"), LogLevel: "info", Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(t.Context(), time.Minute); err != nil {
		t.Fatal(err)
	}
	done, exitErr := c.Exited(0)
	if err := c.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("Exited's channel open after Stop")
	}
	if err := exitErr(); err != nil {
		t.Errorf("server exited with %v after SIGTERM", err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || !strings.Contains(string(b), "shutting down") {
		t.Fatalf("output lacks the server's lines:\n%s", b)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "[n1] ") {
			t.Errorf("line without the node's prefix: %q", l)
		}
	}
}

func waitState(pid int, want byte) error {
	var st byte
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st, err = ReadState(pid); err == nil && st == want {
			return nil
		}
	}
	return fmt.Errorf("pid %d state %q (%v), want %q", pid, st, err, want)
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
