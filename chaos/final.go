package chaos

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/proto/shardlogv1"
)

// The end of a run: settle, let consumers catch up, read every replica.

// watchLogStarts asks every replica of the retention topic for its first offset every
// RetentionInterval until the returned func is called (which waits for it), and records
// each answer: the checker requires what lies below a log start to have been old enough
// when it was seen. Unreachable replicas are skipped.
func (r *run) watchLogStarts(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r.cfg.RetentionShards <= 0 {
			return
		}
		everyTick(ctx, r.cfg.RetentionInterval, func() { r.sampleLogStarts(ctx) })
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// sampleLogStarts records one first offset of each replica of the retention topic.
func (r *run) sampleLogStarts(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	info, err := r.adm.DescribeTopic(dctx, RetentionTopic, false)
	cancel()
	if err != nil {
		return
	}
	for _, s := range info.GetShards() {
		for _, rep := range s.GetReplicas() {
			i, ok := r.nodeIndex(rep.GetClientAddr())
			if !ok {
				continue
			}
			st, err := ReplicaStatus(ctx, rep.GetClientAddr(), s.GetShardId())
			if err != nil || !st.GetHosted() {
				continue
			}
			ls := LogStart{Topic: RetentionTopic, Shard: s.GetIndex(), Node: r.cl.Nodes()[i].Name,
				Start: st.GetFirstOffset(), AtUnixMs: time.Now().UnixMilli()}
			r.mu.Lock()
			r.logStarts = append(r.logStarts, ls)
			r.mu.Unlock()
		}
	}
}

// settle waits (bounded) until every replica of every shard of every topic holds the
// same next offset, and returns each topic's shards' next offsets as last described.
func (r *run) settle(ctx context.Context) map[string][]uint64 {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SettleTimeout)
	defer cancel()
	ends := map[string][]uint64{}
	for {
		why := ""
		for _, t := range r.topics {
			info, err := r.adm.DescribeTopic(ctx, t.Name, true)
			if err != nil {
				why = t.Name + ": " + err.Error()
				break
			}
			ends[t.Name] = ends[t.Name][:0]
			for _, s := range info.GetShards() {
				ends[t.Name] = append(ends[t.Name], s.GetNextOffset())
			}
			if why = Unsettled(ctx, r.withoutGone(info.GetShards())); why != "" {
				why = t.Name + ": " + why
				break
			}
		}
		if why == "" {
			r.log.Info("cluster settled")
			return ends
		}
		if ctx.Err() != nil {
			r.log.Warn("cluster did not settle; reading replicas anyway", "why", why)
			return ends
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

// withoutGone returns shards without their replicas on nodes gone for good (the final
// replication check counts those), keeping what Unsettled reads.
func (r *run) withoutGone(shards []*shardlogv1.ShardInfo) []*shardlogv1.ShardInfo {
	out := make([]*shardlogv1.ShardInfo, 0, len(shards))
	for _, s := range shards {
		c := &shardlogv1.ShardInfo{Index: s.GetIndex(), ShardId: s.GetShardId(), LeaderNodeId: s.GetLeaderNodeId(),
			NextOffset: s.GetNextOffset(), StatusError: s.GetStatusError()}
		for _, rep := range s.GetReplicas() {
			if i, ok := r.nodeIndex(rep.GetClientAddr()); !ok || !r.isGone(i) {
				c.Replicas = append(c.Replicas, rep)
			}
		}
		out = append(out, c)
	}
	return out
}

// Unsettled says why the shards (a DescribeTopic answer with offsets) are not settled
// yet, or "" when every shard has a leader and all its replicas report the leader's next
// offset. The in-process crash test (node/crashtest) waits with it too.
func Unsettled(ctx context.Context, shards []*shardlogv1.ShardInfo) string {
	for _, s := range shards {
		if s.GetStatusError() != "" {
			return fmt.Sprintf("shard %d: %s", s.GetIndex(), s.GetStatusError())
		}
		for _, rep := range s.GetReplicas() {
			st, err := ReplicaStatus(ctx, rep.GetClientAddr(), s.GetShardId())
			if err != nil {
				return fmt.Sprintf("shard %d on %s: %v", s.GetIndex(), rep.GetClientAddr(), err)
			}
			if !st.GetHosted() || st.GetNextOffset() != s.GetNextOffset() {
				return fmt.Sprintf("shard %d on %s: next offset %d, leader's %d", s.GetIndex(), rep.GetClientAddr(),
					st.GetNextOffset(), s.GetNextOffset())
			}
		}
	}
	return ""
}

// ReplicaStatus asks the node at addr for its replica of shardID (at most 2 s).
func ReplicaStatus(ctx context.Context, addr string, shardID uint64) (*shardlogv1.ShardStatus, error) {
	var resp *shardlogv1.ShardStatusResponse
	err := callNode(ctx, addr, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = shardlogv1.NewClusterClient(cc).ShardStatus(ctx, &shardlogv1.ShardStatusRequest{ShardIds: []uint64{shardID}})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetShards()) != 1 {
		return nil, fmt.Errorf("no status for shard %d", shardID)
	}
	return resp.GetShards()[0], nil
}

// callNode runs one call on a connection of its own to the node at addr, bounded by
// 2 s: the checks ask one particular node, not whichever the admin client picks.
func callNode(ctx context.Context, addr string, call func(context.Context, *grpc.ClientConn) error) error {
	cc, err := grpc.NewClient(addr, shardlogv1.DialOptions()...)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return call(ctx, cc)
}

// waitConsumers gives the consumers (bounded by the settle timeout) time to read every
// shard of their topic up to its end.
func (r *run) waitConsumers(ctx context.Context, ends map[string][]uint64) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SettleTimeout)
	defer cancel()
	behind := func() string {
		for _, t := range r.topics {
			for c := range t.Consumers {
				for s, end := range ends[t.Name] {
					if pos := r.rec.position(t.Name, c, uint32(s)); pos < end {
						return fmt.Sprintf("%s consumer %d shard %d at %d of %d", t.Name, c, s, pos, end)
					}
				}
			}
		}
		return ""
	}
	for ctx.Err() == nil {
		if behind() == "" {
			return
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	r.log.Warn("consumers did not catch up", "first", behind())
}

// readReplicas reads every replica's whole log of every topic from its own node (local
// fetches).
func (r *run) readReplicas(ctx context.Context) []ReplicaLog {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SettleTimeout)
	defer cancel()
	var logs []ReplicaLog
	for _, t := range r.topics {
		var info *shardlogv1.TopicInfo
		err := ctx.Err()
		for info == nil && ctx.Err() == nil {
			if info, err = r.adm.DescribeTopic(ctx, t.Name, false); err != nil {
				info = nil
				sleepCtx(ctx, 300*time.Millisecond)
			}
		}
		if info == nil {
			r.errorf("describe topic %s for the final read: %v", t.Name, err)
			continue
		}
		// The availability check takes each shard's replicas from its creation.
		// Runs with kill-forever or drain move replicas on purpose.
		// The order of a shard's replicas is not part of its placement: the servers
		// reorder them (seen since the self-healing commit d37b47a).
		if now := r.replicaNames(info.GetShards()); !takesNodes(r.cfg.Faults) && !slices.EqualFunc(now, t.Replicas, sameSet) {
			r.errorf("topic %s: replicas moved during the run (%v, then %v): the availability check used the first", t.Name, t.Replicas, now)
		}
		for _, s := range info.GetShards() {
			for _, rep := range s.GetReplicas() {
				i, ok := r.nodeIndex(rep.GetClientAddr())
				if !ok {
					r.errorf("%s shard %d replica on unknown node %s", t.Name, s.GetIndex(), rep.GetClientAddr())
					continue
				}
				if r.isGone(i) {
					// The replication check counts it; its node is not there to read.
					r.log.Warn("replica on a node gone for good: not read", "topic", t.Name, "shard", s.GetIndex(), "node", r.cl.Nodes()[i].Name)
					continue
				}
				// NB: one replica gets at most a quarter of the budget, so that a node that
				// is down (a server that crashed) does not leave every other replica unread.
				rctx, rcancel := context.WithTimeout(ctx, r.cfg.SettleTimeout/4)
				l, err := readReplica(rctx, rep.GetClientAddr(), t.Name, s.GetIndex(), s.GetShardId())
				rcancel()
				if err != nil {
					r.errorf("read %s shard %d on %s: %v", t.Name, s.GetIndex(), r.cl.Nodes()[i].Name, err)
					continue
				}
				l.Node = r.cl.Nodes()[i].Name
				logs = append(logs, l)
			}
		}
	}
	return logs
}

// readReplica reads one node's replica of a shard from its first offset to its end,
// retrying each step until ctx ends. When retention moves the first offset past the read
// position meanwhile, it starts again from the new first offset.
func readReplica(ctx context.Context, addr, topic string, shard uint32, shardID uint64) (ReplicaLog, error) {
	cc, err := grpc.NewClient(addr, shardlogv1.DialOptions()...)
	if err != nil {
		return ReplicaLog{}, err
	}
	defer cc.Close()
	lc, cs := shardlogv1.NewLogClient(cc), shardlogv1.NewClusterClient(cc)
	l := ReplicaLog{Topic: topic, Shard: shard}
	restart := func() error {
		for {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := cs.ShardStatus(sctx, &shardlogv1.ShardStatusRequest{ShardIds: []uint64{shardID}})
			cancel()
			if err == nil && len(resp.GetShards()) == 1 {
				l.Start, l.Records = resp.GetShards()[0].GetFirstOffset(), nil
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("shard status: %v", err)
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	if err := restart(); err != nil {
		return l, err
	}
	for {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := lc.Fetch(fctx, &shardlogv1.FetchRequest{Topic: topic, Shard: shard, Offset: l.End(),
			MaxBytes: 4 << 20, Local: true})
		cancel()
		switch {
		case status.Code(err) == codes.OutOfRange:
			if ctx.Err() != nil {
				return l, err
			}
			sleepCtx(ctx, 50*time.Millisecond)
			if err := restart(); err != nil {
				return l, err
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return l, err
			}
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		case len(resp.GetBatches()) == 0:
			return l, nil
		}
		n := len(l.Records)
		if err := appendBatches(&l, resp.GetBatches()); err != nil {
			return l, err
		}
		if len(l.Records) == n {
			return l, fmt.Errorf("fetch at %d made no progress", l.End())
		}
	}
}

// appendBatches decodes fetched batches onto l, skipping records before l.End().
func appendBatches(l *ReplicaLog, batches []*shardlogv1.StoredBatch) error {
	for _, b := range batches {
		recs, err := batch.Decode(b.GetData())
		if err != nil {
			return fmt.Errorf("batch at %d: %w", b.GetBaseOffset(), err)
		}
		if len(l.Records) == 0 && b.GetBaseOffset() > l.Start {
			l.Start = b.GetBaseOffset()
		}
		for i, rec := range recs {
			off := b.GetBaseOffset() + uint64(i)
			switch {
			case off < l.End():
				continue
			case off > l.End():
				return fmt.Errorf("gap: batch at %d holds offset %d, expected %d", b.GetBaseOffset(), off, l.End())
			}
			l.Records = append(l.Records, fromSegment(rec))
		}
	}
	return nil
}

// sameSet reports whether a and b hold the same names, in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
