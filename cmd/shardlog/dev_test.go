package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shardlog/localcluster/localclustertest"
)

// TestDevInterruptStopsEveryNode runs `shardlog dev` with two nodes as a real process,
// waits until it serves, sends SIGINT and checks that it exits at once with status 0
// and that no server process it started is left.
func TestDevInterruptStopsEveryNode(t *testing.T) {
	bin := localclustertest.Binary(t, "SHARDLOG_BINARY")
	port := consecutiveFreePorts(t, 13)
	var out, errb syncBuffer
	cmd := exec.Command(bin, "dev", "--dir", filepath.Join(t.TempDir(), "dev"), "--nodes", "2", "--port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill() // only the process this test started, by its PID
			<-done
		}
	})
	waitFor(t, "the dev cluster's banner", func() bool { return strings.Contains(out.String(), "shardlog dev cluster: 2 nodes") })
	var pids []int
	for _, m := range regexp.MustCompile(`\(pid (\d+)\)`).FindAllStringSubmatch(out.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("pids %v in the banner:\n%s", pids, out.String())
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("dev exited with %v after SIGINT\nstderr: %s", waitErr, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("dev still running 20s after SIGINT\nstdout: %s\nstderr: %s", out.String(), errb.String())
	}
	t.Logf("dev exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("server pid %d still running after dev exited", pid)
		}
	}
}

// consecutiveFreePorts returns a port p such that p..p+n-1 are free on 127.0.0.1 now.
func consecutiveFreePorts(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if p+n > 65535 {
			continue
		}
		ok := true
		for q := p; q < p+n && ok; q++ {
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q))); err == nil {
				_ = l.Close()
			} else {
				ok = false
			}
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
