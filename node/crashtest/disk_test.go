package crashtest

import (
	"errors"
	"io"
	"testing"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	lnivfs "github.com/lni/vfs"
)

func writeLni(t *testing.T, fs lnivfs.FS, name, data string, sync bool) lnivfs.File {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func syncDir(t *testing.T, open func(string) (interface{ Sync() error }, error), dir string) {
	t.Helper()
	d, err := open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readLni(t *testing.T, fs lnivfs.FS, name string) (string, bool) {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		return "", false
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestCrashDiskKeepsOnlySyncedRaftData checks the Raft file system: synced bytes and
// synced directory entries survive a crash; unsynced appends, files never synced into
// their directory, syncs after the cut, syncs through an old epoch's FS, and WAL syncs
// skipped by the fault are all lost.
func TestCrashDiskKeepsOnlySyncedRaftData(t *testing.T) {
	p := &Power{}
	d := NewDisk(p)
	fs := d.RaftFS()
	openDir := func(n string) (interface{ Sync() error }, error) { return fs.OpenDir(n) }
	if err := fs.MkdirAll("/r", 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, openDir, "/")
	kept := writeLni(t, fs, "/r/kept", "synced", true)
	if _, err := kept.Write([]byte("+unsynced")); err != nil {
		t.Fatal(err)
	}
	writeLni(t, fs, "/r/000001.log", "wal-synced", true).Close()
	syncDir(t, openDir, "/r")
	writeLni(t, fs, "/r/lost", "no dir sync", true).Close()

	p.SkipWALSync(true)
	wal, err := fs.OpenForAppend("/r/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wal.Write([]byte("+skipped")); err != nil {
		t.Fatal(err)
	}
	if err := wal.Sync(); err != nil {
		t.Fatal(err)
	}
	p.SkipWALSync(false)

	p.Cut()
	if _, err := kept.Write([]byte("+after cut")); err != nil {
		t.Fatal(err)
	}
	if err := kept.Sync(); err != nil {
		t.Fatal(err)
	}
	kept.Close()
	wal.Close()
	raftDropped, _, err := d.Crash()
	if err != nil {
		t.Fatal(err)
	}
	p.Restore()
	fs2 := d.RaftFS()
	if got, _ := readLni(t, fs2, "/r/kept"); got != "synced" {
		t.Errorf("kept = %q, want %q", got, "synced")
	}
	if got, _ := readLni(t, fs2, "/r/000001.log"); got != "wal-synced" {
		t.Errorf("WAL = %q, want %q (the skipped sync must not keep data)", got, "wal-synced")
	}
	if _, ok := readLni(t, fs2, "/r/lost"); ok {
		t.Errorf("a file whose directory was never synced survived")
	}
	if want := int64(len("+unsynced+after cut") + len("+skipped") + len("no dir sync")); raftDropped != want {
		t.Errorf("dropped %d bytes, want %d", raftDropped, want)
	}
	if _, _, skipped := p.Stats(); skipped != 1 {
		t.Errorf("skipped syncs = %d, want 1", skipped)
	}

	// The old epoch's FS writes into the old tree and can never sync again.
	stale := writeLni(t, fs, "/r/stale", "x", true)
	stale.Close()
	if _, ok := readLni(t, fs2, "/r/stale"); ok {
		t.Errorf("a write through the old epoch's FS reached the new disk")
	}
	if _, dropped, _ := p.Stats(); dropped < 2 {
		t.Errorf("dropped syncs = %d, want at least 2 (after the cut, old epoch)", dropped)
	}
}

// TestCrashDiskKeepsOnlySyncedSegmentData checks the same for the segment store's FS.
func TestCrashDiskKeepsOnlySyncedSegmentData(t *testing.T) {
	p := &Power{}
	d := NewDisk(p)
	fs := d.SegmentFS()
	if err := fs.MkdirAll("/s", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/", "/s"} {
		df, err := fs.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := df.Sync(); err != nil {
			t.Fatal(err)
		}
		df.Close()
	}
	f, err := fs.Create("/s/a", pebblevfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("synced")); err != nil {
		t.Fatal(err)
	}
	df, err := fs.OpenDir("/s")
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), df.Sync()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("+lost")); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	df.Close()
	_, segDropped, err := d.Crash()
	if err != nil {
		t.Fatal(err)
	}
	p.Restore()
	g, err := d.SegmentFS().Open("/s/a")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	b, _ := io.ReadAll(g)
	if string(b) != "synced" {
		t.Errorf("segment file = %q, want %q", b, "synced")
	}
	if segDropped != int64(len("+lost")) {
		t.Errorf("dropped %d bytes, want %d", segDropped, len("+lost"))
	}
}
