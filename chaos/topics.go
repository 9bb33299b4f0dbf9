package chaos

import (
	"context"
	"fmt"
	"time"

	"shardlog/proto/shardlogv1"
)

// createTopics creates the run's topics, waits until every shard has a leader and
// records each shard's replicas in r.topics.
func (r *run) createTopics(ctx context.Context) error {
	cfg := r.cfg
	specs := []TopicSpec{{Name: Topic, Shards: uint32(cfg.Shards), Consumers: cfg.Consumers}}
	side := min(cfg.Consumers, 1)
	if cfg.IdleShards > 0 {
		specs = append(specs, TopicSpec{Name: IdleTopic, Shards: uint32(cfg.IdleShards), Consumers: side})
	}
	if cfg.RetentionShards > 0 {
		specs = append(specs, TopicSpec{Name: RetentionTopic, Shards: uint32(cfg.RetentionShards),
			RetentionMs: cfg.Retention.Milliseconds(), Consumers: side})
	}
	for _, spec := range specs {
		if err := r.createTopic(ctx, &spec); err != nil {
			return err
		}
		r.topics = append(r.topics, spec)
	}
	return nil
}

// createTopic creates one topic, waits until every shard has a leader and fills in
// spec.Replicas.
func (r *run) createTopic(ctx context.Context, spec *TopicSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ps := &shardlogv1.TopicSpec{Name: spec.Name, Shards: spec.Shards, ReplicationFactor: uint32(r.cfg.ReplicationFactor),
		RetentionMs: spec.RetentionMs}
	for {
		_, err := r.adm.CreateTopic(ctx, ps)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("chaos: create topic %s: %w", spec.Name, err)
		}
		if info, derr := r.adm.DescribeTopic(ctx, spec.Name, false); derr == nil && info != nil {
			break // an earlier attempt created it
		}
		sleepCtx(ctx, 300*time.Millisecond)
	}
	info, err := r.adm.WaitLed(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	spec.Replicas = r.replicaNames(info.GetShards())
	return nil
}

// replicaNames returns, per shard index, the names of the nodes holding its replicas.
func (r *run) replicaNames(shards []*shardlogv1.ShardInfo) [][]string {
	out := make([][]string, len(shards))
	for _, s := range shards {
		if int(s.GetIndex()) >= len(out) {
			continue
		}
		for _, rep := range s.GetReplicas() {
			if i, ok := r.nodeIndex(rep.GetClientAddr()); ok {
				out[s.GetIndex()] = append(out[s.GetIndex()], r.cl.Nodes()[i].Name)
			}
		}
	}
	return out
}
