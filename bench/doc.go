// Package bench is shardlog's benchmark harness, run as `shardlog bench`.
//
// It starts a cluster of real `shardlog server` processes on 127.0.0.1 (through
// localcluster) or uses an existing one (--server), creates a topic, and runs a
// workload through the Go client: producers that send records as fast as the
// client's in-flight window allows (closed loop) or at a fixed rate (open loop,
// --rate), consumers that tail the topic while it is written, and consumers that
// read the whole backlog from offset 0 afterwards. It reports:
//
//   - produce records/s and MB/s, and acknowledgement latency (p50, p99, p99.9,
//     max) from an HdrHistogram. With --rate the latency of each record is measured
//     from the time it was meant to be sent, not from when Send was called, so a
//     stalled cluster shows up as latency instead of as a lower send rate
//     (coordinated omission);
//   - end-to-end latency while tailing (send time carried in the record to its
//     arrival at a consumer) and consume records/s and MB/s from the backlog;
//   - CPU seconds (utime+stime from /proc/<pid>/stat) and peak RSS (VmHWM from
//     /proc/<pid>/status) of every server process the harness started;
//   - the producer's errors and retries.
//
// MB/s counts record payload (key and value) bytes, 10^6 per MB, before
// compression. With --baseline the same run also measures the segment store alone
// (the same encoded batches appended to a Pebble store on a temporary directory, no
// Raft and no network) and the workload at replication factor 1, so the report shows
// what replication and the network cost.
//
// `shardlog bench matrix` runs the standard matrix (record sizes, shard counts,
// replication factors, and fixed-rate latency runs at 10% of the measured peak) on
// one cluster, writes one JSON file per run and prints a markdown table.
//
// `shardlog bench scale` creates a topic with many shards (default 1,000 at RF 3),
// times it until every shard has a leader, measures each server's idle CPU and RSS,
// then compares produce throughput with --active shards (256) against 8.
//
// `shardlog bench failover` measures how long writes stop when the node leading a
// shard is killed (target FailoverTargetSeconds, 1.5 s, with 3 nodes at RF 3). It
// starts its own cluster (--server is refused: it kills processes), writes at a fixed
// rate to every shard with explicit shard routing, and --kills times: waits --settle,
// kills the node leading shard (k-1) mod shards with SIGKILL, and measures for every
// shard that node led the time from the kill to the first acknowledgement after it
// (of any record: one sent before the kill and acknowledged after a retry counts, as
// that is when a user sees writes work again), the gap between the last
// acknowledgement before and the first after, and the time until the surviving
// nodes' ShardStatus shows new leaders. It then restarts the node and waits until
// every node is ALIVE and every shard has a leader. The report gives each kill's
// worst and median affected shard, and the median and maximum over kills of the worst
// shard's outage against the target. --signal stop pauses the node with SIGSTOP
// instead (and continues it with SIGCONT). --idle writes one record per shard, then
// nothing: before each kill it waits --idle-wait so that the shards quiesce, hits the
// node leading the most shards and probes each shard it led with one record sent
// through the survivors every --probe-interval until acknowledged. A shard that takes
// no write within --timeout is reported as not recovered and fails the run.
package bench
