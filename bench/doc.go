// Package bench is shardlog's benchmark harness, run as `shardlog bench`.
//
// It starts a cluster of real `shardlog server` processes on 127.0.0.1 (through
// chaos.Cluster) or uses an existing one (--server), creates a topic, and runs a
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
package bench
