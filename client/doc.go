// Package client is the Go client library for shardlog: admin calls, an idempotent
// batching Producer and a long-polling Consumer.
//
// A Client holds one gRPC connection per server address. Every node of a cluster answers
// every RPC (it forwards to shard leaders), so the addresses are only alternatives: calls
// go to the current address and move to the next one when a call fails with Unavailable.
//
// Produce and Fetch skip that forwarding hop when they can: the client caches each
// topic's shard leaders (from DescribeTopic, per topic and shared by its producers and
// consumers) and sends a shard's calls straight to its leader's node over a pooled
// connection. The cache is refreshed in the background, at most every 500ms per topic,
// when a call on a leader fails with Unavailable or DeadlineExceeded or when the
// shardlog-leader response header shows the leader moved. The cache is only a hint:
// without an entry, or for a while after its leader's node failed a call, calls go to
// the current address, which forwards.
//
//	c, err := client.Dial(ctx, []string{"127.0.0.1:7400"}, client.Options{})
//	p, err := c.NewProducer(ctx, "events", client.ProducerOptions{})
//	err = p.Send(ctx, client.Message{Key: k, Value: v}, func(r client.Result) { ... })
//	err = p.Close() // flushes; CloseContext(ctx) gives up when ctx ends
//
// # Producer
//
// Records are routed to a shard (explicit Message.Shard, else FNV-1a of the key, else a
// sticky shard that changes whenever its batch is sealed), appended to that shard's open
// batch, and the batch is sealed when it reaches BatchBytes or BatchRecords or after
// Linger. Each shard has one sender goroutine that keeps up to MaxInFlight batches in
// flight. Every batch carries the producer ID and the shard's next sequence number; the
// server applies a shard's batches strictly in sequence order and answers a retried,
// already applied batch with its original offset, so retries are exactly-once.
//
// Invariants the sender keeps (see producer_shard.go):
//   - a retried batch is the same encoded bytes with the same (producer ID, sequence);
//   - resends go out in sequence order, and a batch rejected as out of order (Aborted)
//     is resent only once every earlier batch has been acknowledged;
//   - no new batch is sent while an earlier one waits for a retry, and a fresh producer
//     ID pipelines only after its sequence 0 is acknowledged (the shard accepts any
//     first sequence from an unknown producer, so 1 must not overtake 0);
//   - callbacks run in sequence order per shard, and report success only with the offset
//     the server acknowledged;
//   - when a batch fails for good (fatal code or DeliveryTimeout), every later batch that
//     was already sent under the same producer ID fails too (it can never apply in
//     order), and the shard switches to a fresh random producer ID starting at sequence 0
//     once the old batches have settled.
//
// Every wait is bounded: a Produce RPC by RequestTimeout, a record by DeliveryTimeout
// (then its callback reports ErrDeliveryTimeout), Send on a full buffer and Flush by the
// records' delivery timeouts and their context, Close by the delivery timeouts, and
// CloseContext by its context (records not acknowledged then fail with ErrAborted). A
// failed record's error is a *ShardError naming the topic and shard.
//
// # Consumer
//
// A Consumer reads one, several or all shards of a topic. One goroutine per shard
// long-polls Fetch and hands at most one response at a time to Poll, so memory stays
// bounded and Positions reflects exactly what Poll has returned. Each Fetch is bounded by
// MaxWait+RequestTimeout; FetchErrors reports shards whose fetches keep failing.
package client
