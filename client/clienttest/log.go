package clienttest

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/proto/shardlogv1"
)

// Produce implements shardlogv1.LogServer with the real server's dedupe rules.
func (s *Server) Produce(ctx context.Context, req *shardlogv1.ProduceRequest) (*shardlogv1.ProduceResponse, error) {
	s.markServed(ctx)
	s.mu.Lock()
	f := s.faults
	var delay time.Duration
	if f.MaxDelay > 0 {
		delay = time.Duration(s.rng.Int64N(int64(f.MaxDelay)))
	}
	s.mu.Unlock()
	if f.Hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	recs, err := batch.Decode(req.GetBatch())
	if err != nil || len(recs) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "bad batch: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Produces++
	sh, err := s.shardLocked(req.GetTopic(), req.GetShard())
	if err != nil {
		return nil, err
	}
	switch {
	case s.chance(f.Unavailable):
		s.stats.Injected++
		return nil, status.Error(codes.Unavailable, "injected: no leader")
	case s.chance(f.ResourceExhausted):
		s.stats.Injected++
		return nil, status.Error(codes.ResourceExhausted, "injected: queue full")
	}
	pid, seq := req.GetProducerId(), req.GetSequence()
	var ps *producerState
	if pid != 0 {
		ps = sh.producers[pid]
		expected := uint64(0)
		if ps != nil {
			expected = ps.last + 1
		}
		switch {
		case ps == nil && f.AcceptUnknownProducer:
		case seq < expected:
			s.stats.Duplicates++
			base, ok := ps.bases[seq]
			if !ok {
				return nil, status.Errorf(codes.FailedPrecondition, "sequence %d too old", seq)
			}
			return &shardlogv1.ProduceResponse{BaseOffset: base, RecordCount: uint32(len(recs)), Duplicate: true}, nil
		case seq > expected:
			s.stats.OutOfOrder++
			return nil, status.Errorf(codes.Aborted, "out of order sequence %d, expected %d", seq, expected)
		case s.chance(f.SpuriousAborted):
			s.stats.Injected++
			return nil, status.Error(codes.Aborted, "injected: out of order sequence")
		}
	}
	base := s.appendLocked(sh, req.GetBatch(), len(recs))
	if pid != 0 {
		if ps == nil {
			ps = &producerState{bases: make(map[uint64]uint64)}
			sh.producers[pid] = ps
		}
		ps.last = seq
		ps.bases[seq] = base
	}
	if s.chance(f.LateTimeout) {
		s.stats.Injected++
		return nil, status.Error(codes.DeadlineExceeded, "injected: applied but timed out")
	}
	return &shardlogv1.ProduceResponse{BaseOffset: base, RecordCount: uint32(len(recs))}, nil
}

// Fetch implements shardlogv1.LogServer: stored batches from the last one whose base is
// <= offset, long-polling up to max_wait_ms at the end of the log.
func (s *Server) Fetch(ctx context.Context, req *shardlogv1.FetchRequest) (*shardlogv1.FetchResponse, error) {
	deadline := time.Now().Add(time.Duration(req.GetMaxWaitMs()) * time.Millisecond)
	s.markServed(ctx)
	s.mu.Lock()
	s.stats.Fetches++
	hang := s.faults.Hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	for {
		s.mu.Lock()
		sh, err := s.shardLocked(req.GetTopic(), req.GetShard())
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		off := req.GetOffset()
		if off < sh.start || off > sh.next {
			s.mu.Unlock()
			return nil, status.Errorf(codes.OutOfRange, "offset %d outside [%d, %d]", off, sh.start, sh.next)
		}
		resp := &shardlogv1.FetchResponse{LogStartOffset: sh.start, NextOffset: sh.next}
		resp.Batches = sh.read(off, int(req.GetMaxBytes()))
		changed := s.changed
		s.mu.Unlock()
		wait := time.Until(deadline)
		if len(resp.Batches) > 0 || wait <= 0 {
			return resp, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		t.Stop()
	}
}

// read returns batches covering offset, at least one when one exists, up to maxBytes.
func (sh *shard) read(off uint64, maxBytes int) []*shardlogv1.StoredBatch {
	i := len(sh.batches)
	for j, b := range sh.batches {
		if b.base+b.count > off {
			i = j
			break
		}
	}
	var out []*shardlogv1.StoredBatch
	size := 0
	for ; i < len(sh.batches); i++ {
		b := sh.batches[i]
		if len(out) > 0 && size+len(b.data) > maxBytes {
			break
		}
		size += len(b.data)
		out = append(out, &shardlogv1.StoredBatch{BaseOffset: b.base, Data: b.data})
	}
	return out
}

// Truncate drops the whole batches of a shard below offset before, as retention does.
func (s *Server) Truncate(topic string, idx uint32, before uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, err := s.shardLocked(topic, idx)
	if err != nil {
		return ErrNoShard
	}
	for len(sh.batches) > 0 && sh.batches[0].base+sh.batches[0].count <= before {
		sh.batches = sh.batches[1:]
	}
	sh.start = sh.next
	if len(sh.batches) > 0 {
		sh.start = sh.batches[0].base
	}
	return nil
}

// Records decodes a shard's whole log, in offset order (record i has offset Offsets[i]).
func (s *Server) Records(topic string, idx uint32) (offsets []uint64, recs []batch.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, serr := s.shardLocked(topic, idx)
	if serr != nil {
		return nil, nil, ErrNoShard
	}
	for _, b := range sh.batches {
		rs, err := batch.Decode(b.data)
		if err != nil {
			return nil, nil, err
		}
		for i, r := range rs {
			offsets = append(offsets, b.base+uint64(i))
			recs = append(recs, r)
		}
	}
	return offsets, recs, nil
}

// appendLocked stores one batch of n records and returns its base offset. Called with
// s.mu held.
func (s *Server) appendLocked(sh *shard, data []byte, n int) uint64 {
	base := sh.next
	sh.batches = append(sh.batches, storedBatch{base: base, count: uint64(n), data: data})
	sh.next += uint64(n)
	s.stats.Applied++
	s.notify()
	return base
}

// Append stores records in a shard as one batch, without faults or a producer ID, and
// returns the batch's base offset.
func (s *Server) Append(topic string, idx uint32, recs []batch.Record) (uint64, error) {
	data, err := batch.Encode(nil, recs, batch.CodecNone)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, err := s.shardLocked(topic, idx)
	if err != nil {
		return 0, ErrNoShard
	}
	return s.appendLocked(sh, data, len(recs)), nil
}
