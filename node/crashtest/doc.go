// Package crashtest simulates power loss under a running shardlog cluster: real nodes
// (dragonboat, Pebble, memberlist, gRPC; started by node/nodetest on 127.0.0.1) whose
// Raft directory and segment store live on in-memory file systems that keep only what
// was fsynced. SIGKILL (the chaos harness) keeps the page cache, so a Sync that did
// nothing would pass it; here it loses acknowledged records.
//
// # The crash model
//
// Every node's two file systems (Disk: lni/vfs strict MemFS for dragonboat's LogDB and
// snapshots, pebble/v2 crashable MemFS for the segment store) sync through one Power
// shared by the whole cluster. A crash is a power loss of every node at the same
// instant T:
//
//  1. Power.Cut: from T on, every Sync of every node returns nil and syncs nothing.
//     Syncs in progress finish first (Cut takes the write side of the lock each real
//     sync holds for reading), so each sync happened entirely before T or not at all.
//  2. The nodes are stopped (node.Close) with the power still off. What they write or
//     "sync" meanwhile never becomes durable.
//  3. Disk.Crash replaces each disk by what was synced at T (unsynced file data and
//     unsynced directory entries are dropped), in fresh file systems.
//  4. Power.Restore starts a new epoch; the nodes restart on the new file systems, in a
//     seeded order. File systems handed out in an earlier epoch never sync again.
//
// Why all nodes at once: after T the in-process nodes keep running until they are
// stopped, and a node whose syncs are dropped still sends votes and append
// acknowledgements for state it will lose, which a node without power could not. If only
// some nodes lost power, the others could commit on such promises (two leaders in one
// term after a vote is forgotten), and the run would find "lost" records that a real
// power loss could not lose. With every node cut at the same T, the durable state of
// the whole cluster is exactly its synced state at T, which is what a real power loss
// at T leaves; everything the nodes say to each other after T is discarded with them.
// (Losing one node of three loses nothing even with a bad fsync, so cutting all nodes is
// also what makes the test able to fail.)
//
// Which acknowledgements must survive: a producer belongs to the epoch it was started
// in. An acknowledgement its callback sees while the power is still on in that epoch
// (Power.Live) must survive: the cluster sent it after a quorum's fsyncs returned, and
// those syncs finished before the callback checked Live, so before any later T. Every
// other outcome is indeterminate (the record may be stored once, or not at all): errors,
// and acknowledgements that arrive after the cut, including those from the next epoch
// for batches a producer of an old epoch retries after the restart (a response sent
// after T by a node about to lose it may still be in a socket when the callback runs).
//
// # The check
//
// After the last cut the nodes are restarted, the old producers finish, the cluster
// settles (every replica at its leader's next offset), and every replica of every shard
// is read from its own node (local fetches). Check then requires every acknowledged
// record at its acknowledged offset (lost), no record stored twice, none that no
// producer sent, replicas that agree, per-producer order among acknowledged records
// (chaos.Check), dense offsets from 0 (gaps) and values that carry the pad derived from
// the seed (corrupt).
//
// # Showing it can fail
//
// Power.SkipWALSync makes Sync of dragonboat's LogDB write-ahead log files (the Pebble
// under dragonboat, NNNNNN.log) return nil without syncing: an fsync that lies.
// TestCrashCheckFailsWhenWALSyncIsSkipped turns it on for the first workload and
// requires the run to report lost records.
//
// # Limits
//
//   - Only whole-cluster cuts (see above). A single node's power loss would need its
//     Raft transport cut at T as well, which in-process nodes do not offer.
//   - Unsynced data is dropped whole: no torn writes, no unsynced block that happens to
//     reach the disk (pebble's CrashCloneCfg.UnsyncedDataPercent stays 0; lni/vfs's
//     strict MemFS cannot keep part of a file).
//   - The node's identity file stays on the real disk (node.Config.Dir), as it is written
//     once, when the node first starts.
//   - dragonboat accepts only its own FS types, so the Raft file system is wrapped in an
//     lni/vfs ErrorFS that injects nothing (see Disk.RaftFS).
//
// # Seeds and flags
//
// The schedule (workload lengths, restart orders) comes from -crash.seed, else
// $SHARDLOG_CRASH_SEED, else a random seed; it is logged, and printed again on failure
// with the command that replays it. Goroutine timing is not seeded, so a replay repeats
// the schedule, not every interleaving. -short runs 3 cuts; without -short the run cuts
// power until -crash.duration (default 2m) has passed, or -crash.cycles times.
package crashtest
