// Package chaos is shardlog's fault-injection harness and history checker
// (`shardlog chaos`): it tries hard to make a real multi-process cluster lose an
// acknowledged record, and proves it did not.
//
// # What a run does
//
//  1. Starts its own cluster of real `shardlog server` processes (--nodes, default 5)
//     with data under a fresh temporary directory: on 127.0.0.1 with free ports, or, when
//     partitions are asked for, each node in its own network namespace (see below).
//  2. Creates three topics (--replication-factor each) and waits for leaders: "chaos"
//     (--shards), the busy one; "chaos-idle" (--idle-shards, default 8), whose shards
//     each see one record every --idle-interval (default 20 s, the shards in turn) and
//     otherwise sit idle (quiesced); "chaos-retention" (--retention-shards, default 2)
//     with a time retention of --retention (default 4 s), applied by the servers every
//     --retention-interval (default 1 s).
//  3. Runs the workload for --duration: --producers clients, each through the nodes in
//     its own random order, send unique records round-robin over the shards of "chaos"
//     at --rate records/s in total, one more at --retention-rate to "chaos-retention",
//     and the idle writer to "chaos-idle", with the client library's retries and
//     idempotence. Every record is the deterministic one of Expect: value
//     "p<producer>-<seq>", key "k<producer>-<seq>", header h="<producer>-<seq>-<crc>" and
//     a timestamp the producer picks (now). --consumers clients tail every shard of
//     "chaos" from the start, one more each of the other topics. Every acknowledgement
//     (shard, offset, send and acknowledgement time), every failed send and every read
//     is recorded. As soon as a fault is applied, the idle writer probes idle shards
//     with a record (after a kill or pause those the target led, after a partition or
//     restart-all every one), and sends again after any failure until each took one;
//     the other idle shards stay quiet.
//  4. Meanwhile injects faults one at a time on a schedule that is a pure function of
//     --seed (Plan, math/rand/v2 PCG): the same seed replays the same schedule. Targets
//     that depend on the live cluster (the node that leads shard k) are resolved when the
//     fault runs.
//     - kill: SIGKILL one node (60% of the time the leader of a random shard of any of
//     the topics), restart it after 1-5 s; one kill in three instead kills a shard
//     leader for 12-16 s, longer than the default --max-unavailable, so that a shard
//     that recovers only when its old leader returns fails the run;
//     - pause: SIGSTOP one node (leaders favoured the same way) for 1-5 s, then SIGCONT;
//     - partition: drop all traffic (TCP and UDP: Raft, gRPC, gossip) between two groups
//     of nodes, both ways, for 3-8 s: majority/minority, an isolated shard leader, or a
//     bridge (two halves that cannot see each other, one node that sees both);
//     - restart-all: SIGKILL every node, then start them all again;
//     - kill-forever: SIGKILL one node (a shard leader's 60% of the time) and never
//     restart it: restart-all and later kills skip it. The servers then run with
//     --dead-after (default 10 s) so that its replicas move within the run;
//     - drain: DrainNode one live node (one whose process runs) under load, wait (at most --drain-timeout,
//     default 60 s) until it holds no replica and no move from it is in progress, then
//     RemoveNode it and stop its process for good. The report gives its duration and
//     how many replicas moved; one that does not finish in time fails the run.
//     Kill-forever and drain run at most once a run each, and only when the cluster can
//     spare the node (Plan's Shape): after a kill-forever at least RF+1 live nodes when
//     a drain is planned too, else RF; after a drain at least RF; always at least 3
//     (the meta group). They are not among the default --faults.
//  5. Heals everything (but nodes gone for good), lets producers flush (bounded); in
//     runs with kill-forever or drain, waits (at most --replication-timeout after the
//     faults ended, default 60 s) until every shard of every run topic has exactly RF
//     replicas, all on ALIVE nodes, none on a node killed forever or removed, no move in
//     progress and a leader, else the run fails naming the shards (ReplicationProblems);
//     then waits until every replica of
//     every shard reports the leader's next offset (bounded by --settle-timeout), lets
//     every consumer reach the end of every shard (bounded the same), then reads every
//     replica's log from its first offset on its own node with local fetches
//     (FetchRequest.local).
//  6. Checks the history (Check, a pure function) and prints the Report; with --json as
//     JSON holding seed, acknowledged, every violation count below, expired, faults (per
//     type), max_unavailable_ms, per topic every shard's unavailability, and the
//     first examples of each violation.
//  7. Kills every process it started (by PID) and removes its directory (--keep keeps it,
//     with each node's log in <dir>/n<i>.log).
//
// A server process that exits without the harness killing it (a panic, e.g. at its
// start) is a harness error that quotes the panic line of its log, and the node counts
// as down from then to the end of the run.
//
// Exit status: 0 when nothing was violated and everything could be checked, 1 on a
// violation, 2 on bad flags or an inconclusive run (a replica that could not be read, a
// cluster that did not start).
//
// # What the checker calls a violation
//
//   - lost: an acknowledged record missing from the final log, or not at its acknowledged
//     offset; below a shard's log start it is "expired" instead, not lost, but only on a
//     topic with retention and only if its timestamp was older than the retention when
//     the logs were read. The retention topic's replicas are also asked for their first
//     offset every --retention-interval during the workload: an acknowledged record
//     below a first offset seen then must have been older than the retention at that
//     moment, else it is lost (retention removed it early);
//   - duplicated: one value at two positions of the final log;
//   - divergent: two replicas of a shard holding different records (any field) at one
//     offset (every replica is read only up to what it applied, which is committed);
//   - altered: a record in any replica's log, or as a consumer read it, whose key,
//     headers or timestamp differ from what its producer sent;
//   - phantom read: a consumer saw a value at an offset the final log holds differently
//     (below the log start: differently from what was acknowledged there);
//   - read gap: a consumer that did not read every offset of a shard in order, from the
//     start up to the last acknowledged one (it skipped one, read one twice or went
//     back, or stopped early); it may only jump over offsets below the final log start.
//     The first gap of each consumer and shard is reported (expected offset, got);
//   - order: one producer's records in one shard out of sequence order;
//   - unknown record: a record in the log that no producer sent;
//   - unreplicated: a shard not fully replicated on live nodes in time (above);
//   - drain failed: the drain did not finish within --drain-timeout, or the drained
//     node could not be removed;
//   - unavailable shard: a shard unwritable for longer than --max-unavailable (default
//     10 s) while it had a live, connected majority of its replicas. A shard is
//     unwritable from a send until its next acknowledgement of anything (a failed send
//     until the next success); the time in which the faults in force (killed or paused
//     nodes, cut links, restart-all) left no live replica able to reach a majority of
//     the shard's replicas, as placed at creation, is not counted. A node killed forever
//     or removed counts as down from then to the end of the run. In runs with
//     kill-forever or drain the harness describes the cluster every second and records
//     each change of a shard's voting replicas (History.Placements; a replica being
//     added or catching up does not vote); each set counts from when it was seen. NB:
//     a change is seen up to a second late, so for that second the old set counts.
//
// The final log of a shard is, at each offset, the record most replicas hold. A send that
// failed is indeterminate: it may be in the log (once). A replica that ends before the
// others is counted as lagging, not as a violation.
//
// # Partitions and network namespaces
//
// Partitions need root, iproute2 and nftables; setup-netns.sh in this directory installs
// the two Debian packages. Each node then runs under `ip netns exec` in its own namespace
// with its own address 10.213.X.<i+1> on a veth joined to a bridge in the harness's
// namespace; a partition loads an nftables table into the nodes' namespaces that drops
// packets from and to the other side. The nodes see only lost packets. Without root or
// the tools, `shardlog chaos` says so and runs without partitions; it never pretends.
//
// # Examples
//
//	shardlog chaos --faults kill,pause,partition,restart-all --duration 120s
//	shardlog chaos --seed 42 --json          # replay seed 42, JSON report
//	shardlog chaos --nodes 3 --faults kill --keep
//	shardlog chaos --faults kill,pause,partition,restart-all,kill-forever,drain --duration 90s
//
// In Go: Run(ctx, Config) runs once and returns the Report (cmd/shardlog parses the
// flags into the Config); Check(History) is the checker; Plan(seed, faults, duration,
// shape) the schedule; ReplicationProblems the final replication check.
// The server processes are started, killed, paused and restarted through localcluster;
// Netns adds the network namespaces that partitions cut.
package chaos
