package crashtest

import (
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	lnivfs "github.com/lni/vfs"
)

// Power is the power supply of every Disk in a cluster. While it is on, a Sync reaches
// the disk and makes the data durable; Cut turns it off for all disks at one instant
// (syncs then return nil and keep nothing), and Restore turns it on again in a new
// epoch. File systems are bound to the epoch they were handed out in: those of an
// earlier epoch never sync again, so a leftover goroutine of a crashed node cannot make
// anything durable in the next one.
type Power struct {
	mu    sync.RWMutex // read-held across every real sync, write-held to flip the state
	epoch uint64
	off   bool

	skipWAL atomic.Bool
	// counters for the report
	synced, dropped, skipped atomic.Uint64
}

// Epoch returns the current epoch.
func (p *Power) Epoch() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.epoch
}

// Live reports whether the power is on in epoch: an acknowledgement that arrives while
// Live(its producer's epoch) is true was made durable by syncs that completed before
// any later Cut (see the package comment).
func (p *Power) Live(epoch uint64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return !p.off && p.epoch == epoch
}

// Cut turns the power off. It waits for syncs in progress: each one either completed
// before the cut or is dropped.
func (p *Power) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = true
}

// Restore turns the power on in a new epoch.
func (p *Power) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = false
	p.epoch++
}

// SkipWALSync is the test-only fault that proves the check can fail: while it is on,
// Sync on dragonboat's LogDB write-ahead log files (NNNNNN.log) returns nil and
// syncs nothing, as an fsync that lies would.
func (p *Power) SkipWALSync(on bool) { p.skipWAL.Store(on) }

// Stats returns how many syncs reached a disk, were dropped (power off or an old
// epoch) and were skipped by SkipWALSync.
func (p *Power) Stats() (synced, dropped, skipped uint64) {
	return p.synced.Load(), p.dropped.Load(), p.skipped.Load()
}

// sync runs do (a real sync) if the power is on in epoch.
func (p *Power) sync(epoch uint64, do func() error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.off || p.epoch != epoch {
		p.dropped.Add(1)
		return nil
	}
	p.synced.Add(1)
	return do()
}

// Disk is one node's storage: an in-memory file system for dragonboat (lni/vfs, strict:
// only synced data and synced directory entries survive ResetToSyncedState) and one for
// the segment store (pebble/v2's crashable MemFS). The node's identity file stays on the
// real disk (node.Config.Dir); it is written once, at the first start, and a real power
// loss could only lose it before the node had joined.
type Disk struct {
	power *Power
	raft  *lnivfs.MemFS
	seg   *pebblevfs.MemFS
}

// NewDisk returns an empty disk powered by p.
func NewDisk(p *Power) *Disk {
	return &Disk{power: p, raft: lnivfs.NewStrictMem(), seg: pebblevfs.NewCrashableMem()}
}

// RaftFS returns the Raft file system for the current epoch (node.Config.RaftFS).
//
// NB: dragonboat accepts only the real disk, *vfs.MemFS or *vfs.ErrorFS (it panics
// "invalid fs" otherwise), so the wrapper goes inside an ErrorFS that injects no
// errors. Its one side effect: dragonboat's step workers then recover panics whose value
// is an error instead of crashing the process; such a shard stops, and the run fails
// when the cluster does not settle rather than with the panic.
func (d *Disk) RaftFS() lnivfs.FS {
	return lnivfs.Wrap(&raftFS{FS: d.raft, power: d.power, epoch: d.power.Epoch()}, noFaults{})
}

// noFaults is an lni/vfs Injector that injects nothing.
type noFaults struct{}

func (noFaults) MaybeError(lnivfs.Op) error { return nil }

// SegmentFS returns the segment file system for the current epoch (node.Config.SegmentFS).
func (d *Disk) SegmentFS() pebblevfs.FS {
	return &segFS{FS: d.seg, power: d.power, epoch: d.power.Epoch()}
}

// Crash replaces the disk's contents by what was synced: call it with the power cut and
// the node stopped. The new contents live in fresh file systems, so nothing the old
// node might still hold can write into them.
// It returns how many bytes of file data the Raft and the segment file systems lost
// (files that shrank or vanished; files removed but never synced out of their
// directory come back and count nothing).
func (d *Disk) Crash() (raftDropped, segDropped int64, err error) {
	raftBefore, err := fileSizes(d.raft.List, lniStat(d.raft), "/")
	if err != nil {
		return 0, 0, err
	}
	d.raft.ResetToSyncedState()
	fresh := lnivfs.NewStrictMem()
	if err := copySynced(d.raft, fresh, "/"); err != nil {
		return 0, 0, fmt.Errorf("crashtest: copy the synced Raft files: %w", err)
	}
	d.raft = fresh
	raftAfter, err := fileSizes(d.raft.List, lniStat(d.raft), "/")
	if err != nil {
		return 0, 0, err
	}
	segBefore, err := fileSizes(d.seg.List, pebbleStat(d.seg), "/")
	if err != nil {
		return 0, 0, err
	}
	d.seg = d.seg.CrashClone(pebblevfs.CrashCloneCfg{})
	segAfter, err := fileSizes(d.seg.List, pebbleStat(d.seg), "/")
	if err != nil {
		return 0, 0, err
	}
	return shrunk(raftBefore, raftAfter), shrunk(segBefore, segAfter), nil
}

// shrunk sums, over the files of before, how many bytes they lost in after.
func shrunk(before, after map[string]int64) int64 {
	var n int64
	for p, size := range before {
		n += max(0, size-after[p])
	}
	return n
}

type statFunc func(name string) (size int64, dir bool, err error)

func lniStat(fs *lnivfs.MemFS) statFunc {
	return func(name string) (int64, bool, error) {
		st, err := fs.Stat(name)
		if err != nil {
			return 0, false, err
		}
		return st.Size(), st.IsDir(), nil
	}
}

func pebbleStat(fs *pebblevfs.MemFS) statFunc {
	return func(name string) (int64, bool, error) {
		st, err := fs.Stat(name)
		if err != nil {
			return 0, false, err
		}
		return st.Size(), st.IsDir(), nil
	}
}

// fileSizes returns the size of every file under dir, by path.
func fileSizes(list func(string) ([]string, error), stat statFunc, dir string) (map[string]int64, error) {
	out := map[string]int64{}
	names, err := list(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		p := path.Join(dir, name)
		size, isDir, err := stat(p)
		if err != nil {
			return nil, err
		}
		if !isDir {
			out[p] = size
			continue
		}
		sub, err := fileSizes(list, stat, p)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, sub)
	}
	return out, nil
}

// copySynced copies dir of src into dst and syncs every file and directory in dst, so
// that all of it is durable there.
func copySynced(src, dst *lnivfs.MemFS, dir string) error {
	names, err := src.List(dir)
	if err != nil {
		return err
	}
	sort.Strings(names)
	if err := dst.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		p := path.Join(dir, name)
		st, err := src.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() {
			if err := copySynced(src, dst, p); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(src, dst, p); err != nil {
			return err
		}
	}
	df, err := dst.OpenDir(dir)
	if err != nil {
		return err
	}
	return closeAfter(df, df.Sync())
}

func copyFile(src, dst *lnivfs.MemFS, p string) error {
	in, err := src.Open(p)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(in)
	if err := closeAfter(in, err); err != nil {
		return err
	}
	out, err := dst.Create(p)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		return closeAfter(out, err)
	}
	return closeAfter(out, out.Sync())
}

func closeAfter(c io.Closer, err error) error {
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// walName matches the write-ahead log files of the Pebble under dragonboat's LogDB.
var walName = regexp.MustCompile(`^[0-9]+\.log$`)

// raftFS is a Disk's Raft file system in one epoch: every file it opens syncs through
// the Power.
type raftFS struct {
	lnivfs.FS
	power *Power
	epoch uint64
}

func (f *raftFS) wrap(file lnivfs.File, err error, name string) (lnivfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &raftFile{File: file, fs: f, wal: walName.MatchString(path.Base(name))}, nil
}

func (f *raftFS) Create(name string) (lnivfs.File, error) {
	file, err := f.FS.Create(name)
	return f.wrap(file, err, name)
}

func (f *raftFS) Open(name string, opts ...lnivfs.OpenOption) (lnivfs.File, error) {
	file, err := f.FS.Open(name, opts...)
	return f.wrap(file, err, name)
}

func (f *raftFS) OpenDir(name string) (lnivfs.File, error) {
	file, err := f.FS.OpenDir(name)
	return f.wrap(file, err, "")
}

func (f *raftFS) OpenForAppend(name string) (lnivfs.File, error) {
	file, err := f.FS.OpenForAppend(name)
	return f.wrap(file, err, name)
}

func (f *raftFS) ReuseForWrite(oldname, newname string) (lnivfs.File, error) {
	file, err := f.FS.ReuseForWrite(oldname, newname)
	return f.wrap(file, err, newname)
}

// GetDiskUsage reports a disk with room to spare: lni's MemFS answers "not supported",
// which the Pebble under dragonboat logs as a background error after every file deletion.
func (f *raftFS) GetDiskUsage(string) (lnivfs.DiskUsage, error) {
	return lnivfs.DiskUsage{AvailBytes: 1 << 40, TotalBytes: 1 << 40}, nil
}

type raftFile struct {
	lnivfs.File
	fs  *raftFS
	wal bool
}

func (f *raftFile) Sync() error {
	if f.wal && f.fs.power.skipWAL.Load() {
		f.fs.power.skipped.Add(1)
		return nil
	}
	return f.fs.power.sync(f.fs.epoch, f.File.Sync)
}

// segFS is a Disk's segment file system in one epoch.
type segFS struct {
	pebblevfs.FS
	power *Power
	epoch uint64
}

func (f *segFS) wrap(file pebblevfs.File, err error) (pebblevfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &segFile{File: file, fs: f}, nil
}

func (f *segFS) Create(name string, c pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	return f.wrap(f.FS.Create(name, c))
}

func (f *segFS) Open(name string, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	return f.wrap(f.FS.Open(name, opts...))
}

func (f *segFS) OpenReadWrite(name string, c pebblevfs.DiskWriteCategory, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	return f.wrap(f.FS.OpenReadWrite(name, c, opts...))
}

func (f *segFS) OpenDir(name string) (pebblevfs.File, error) {
	return f.wrap(f.FS.OpenDir(name))
}

func (f *segFS) ReuseForWrite(oldname, newname string, c pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	return f.wrap(f.FS.ReuseForWrite(oldname, newname, c))
}

func (f *segFS) Unwrap() pebblevfs.FS { return f.FS }

type segFile struct {
	pebblevfs.File
	fs *segFS
}

func (f *segFile) Sync() error { return f.fs.power.sync(f.fs.epoch, f.File.Sync) }

func (f *segFile) SyncData() error { return f.fs.power.sync(f.fs.epoch, f.File.SyncData) }

// SyncTo promises no durability (fullSync false) in MemFS; when the power is off it
// does nothing and says so.
func (f *segFile) SyncTo(length int64) (bool, error) {
	full := false
	err := f.fs.power.sync(f.fs.epoch, func() (err error) {
		full, err = f.File.SyncTo(length)
		return err
	})
	return full, err
}
