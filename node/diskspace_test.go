package node

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/gossip"
)

// fakeDisk is a statfs whose answers the test sets.
type fakeDisk struct {
	free uint64
	err  error
}

func (f *fakeDisk) statfs(string) (diskSpace, error) {
	return diskSpace{free: f.free, total: 1 << 30}, f.err
}

func TestDiskMonitorTransitions(t *testing.T) {
	const limit = 64 << 20
	disk := &fakeDisk{free: 100 << 20}
	var logs bytes.Buffer
	m := newDiskMonitor("/data", limit, disk.statfs, slog.New(slog.NewTextHandler(&logs, nil)))
	steps := []struct {
		name    string
		free    uint64
		err     error
		full    bool
		changed bool
	}{
		{name: "plenty", free: 100 << 20},
		{name: "exactly the limit is not full", free: limit},
		{name: "one byte below", free: limit - 1, full: true, changed: true},
		{name: "still below", free: 1 << 20, full: true},
		{name: "statfs fails: state kept", err: errors.New("EIO"), full: true},
		{name: "statfs fails again: logged once", err: errors.New("EIO"), full: true},
		{name: "back at the limit: not yet free (hysteresis)", free: limit, full: true},
		{name: "just under the resume point", free: limit + limit/16 - 1, full: true},
		{name: "resume point reached", free: limit + limit/16, changed: true},
		{name: "dips to the limit again: not full", free: limit},
		{name: "below again", free: 10, full: true, changed: true},
	}
	for _, s := range steps {
		disk.free, disk.err = s.free, s.err
		changed := m.check()
		st := m.state()
		if changed != s.changed || st.full != s.full {
			t.Fatalf("%s: changed %v full %v, want %v %v", s.name, changed, st.full, s.changed, s.full)
		}
		if s.err == nil && st.free != s.free {
			t.Fatalf("%s: free %d, want %d", s.name, st.free, s.free)
		}
	}
	out := logs.String()
	for line, want := range map[string]int{"disk full": 2, "disk space back": 1, "cannot read free disk space": 1, "readable again": 1} {
		if got := strings.Count(out, line); got != want {
			t.Errorf("log has %q %d times, want %d (once per transition):\n%s", line, got, want, out)
		}
	}
	if !strings.Contains(out, `free="10 B" min_free_disk="64.0 MiB"`) || !strings.Contains(out, "dir=/data") {
		t.Errorf("log does not name the free space and the limit:\n%s", out)
	}
}

func TestDiskMonitorOffNeverFull(t *testing.T) {
	disk := &fakeDisk{free: 0}
	m := newDiskMonitor("/data", -1, disk.statfs, slog.New(slog.DiscardHandler))
	if m.check() || m.state().full {
		t.Fatal("a disabled monitor (negative limit) reported a full disk")
	}
}

func TestDiskMonitorPeers(t *testing.T) {
	m := newDiskMonitor("/data", 1, (&fakeDisk{free: 10}).statfs, slog.New(slog.DiscardHandler))
	full := gossip.NodeMeta{DiskFull: true, DiskFreeBytes: 5, MinFreeDiskBytes: 9}
	m.setPeers([]gossip.Member{
		{NodeID: 1, State: gossip.StateAlive, Meta: full}, // self: its own monitor decides
		{NodeID: 2, State: gossip.StateAlive, Meta: full},
		{NodeID: 3, State: gossip.StateSuspect, Meta: full},
		{NodeID: 4, State: gossip.StateDead, Meta: full}, // receives no entries
		{NodeID: 5, State: gossip.StateAlive},
	}, 1)
	got := *m.peers.Load()
	if len(got) != 2 || got[2] != full || got[3] != full {
		t.Fatalf("full peers %v, want nodes 2 and 3", got)
	}
}

func TestDiskFullErrorIsNotRetried(t *testing.T) {
	err := diskFullError("node %d: free disk space is low", 7)
	if status.Code(err) != codes.ResourceExhausted || !isDiskFull(err) {
		t.Fatalf("diskFullError = %v (disk full %v), want ResourceExhausted tagged DISK_FULL", err, isDiskFull(err))
	}
	if retryable(err, true) {
		t.Fatal("a disk-full refusal is retried inside the request")
	}
	// A refusal that crossed a forwarding hop is a status rebuilt from the wire.
	wire := status.Convert(err).Proto()
	if !isDiskFull(status.FromProto(wire).Err()) {
		t.Fatal("the DISK_FULL tag does not survive the status proto")
	}
	busy := status.Error(codes.ResourceExhausted, "queue full")
	if isDiskFull(busy) || !retryable(busy, true) {
		t.Fatal("an untagged ResourceExhausted (queue full) must stay retryable")
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
