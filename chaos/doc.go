// Package chaos is shardlog's fault-injection harness and history checker
// (`shardlog chaos`): it tries hard to make a real multi-process cluster lose an
// acknowledged record, and proves it did not.
//
// # What a run does
//
//  1. Starts its own cluster of real `shardlog server` processes (--nodes, default 5)
//     with data under a fresh temporary directory: on 127.0.0.1 with free ports, or, when
//     partitions are asked for, each node in its own network namespace (see below).
//  2. Creates the topic "chaos" (--shards, --replication-factor) and waits for leaders.
//  3. Runs the workload for --duration: --producers clients, each through the nodes in
//     its own random order, send unique values "p<producer>-<seq>" round-robin over the
//     shards at --rate records/s in total, with the client library's retries and
//     idempotence; --consumers clients tail every shard from the start. Every
//     acknowledgement (shard, offset, time), every failed send and every read is recorded.
//  4. Meanwhile injects faults one at a time on a schedule that is a pure function of
//     --seed (Plan, math/rand/v2 PCG): the same seed replays the same schedule. Targets
//     that depend on the live cluster (the node that leads shard k) are resolved when the
//     fault runs.
//     - kill: SIGKILL one node (60% of the time the leader of a random shard), restart it
//     after 1-5 s;
//     - pause: SIGSTOP one node (leaders favoured the same way) for 1-5 s, then SIGCONT;
//     - partition: drop all traffic (TCP and UDP: Raft, gRPC, gossip) between two groups
//     of nodes, both ways, for 3-8 s: majority/minority, an isolated shard leader, or a
//     bridge (two halves that cannot see each other, one node that sees both);
//     - restart-all: SIGKILL every node, then start them all again.
//  5. Heals everything, lets producers flush (bounded), waits until every replica of
//     every shard reports the leader's next offset (bounded by --settle-timeout), lets
//     consumers catch up, then reads every replica's log from its own node with local
//     fetches (FetchRequest.local).
//  6. Checks the history (Check, a pure function) and prints the Report; with --json as
//     JSON holding seed, acknowledged, lost, duplicated, divergent, phantom_reads,
//     order_violations, unknown_records, faults (per type), max_unavailable_ms and the first
//     examples of each violation.
//  7. Kills every process it started (by PID) and removes its directory (--keep keeps it,
//     with each node's log in <dir>/n<i>.log).
//
// Exit status: 0 when nothing was violated and everything could be checked, 1 on a safety
// violation, 2 on bad flags or an inconclusive run (a replica that could not be read, a
// cluster that did not start).
//
// # What the checker calls a violation
//
//   - lost: an acknowledged record missing from the final log, or not at its acknowledged
//     offset;
//   - duplicated: one value at two positions of the final log;
//   - divergent: two replicas of a shard holding different records at one offset (every
//     replica is read only up to what it applied, which is committed);
//   - phantom read: a consumer saw a record at an offset the final log holds differently;
//   - order: one producer's records in one shard out of sequence order;
//   - unknown record: a record in the log that no producer sent.
//
// The final log of a shard is, at each offset, the record most replicas hold. A send that
// failed is indeterminate: it may be in the log (once). A replica that ends before the
// others is counted as lagging, not as a violation. Availability is reported as
// max_unavailable_ms: the longest time in the workload in which no produce was
// acknowledged, minus the time in which no majority of nodes was up (restart-all).
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
//
// In Go: Main(args, stdout, stderr) is the command; Run(ctx, Config) runs once and returns
// the Report; Check(History) is the checker; Plan(seed, faults, duration) the schedule;
// Cluster starts, kills, pauses and restarts server processes.
package chaos
