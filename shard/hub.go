package shard

import (
	"shardlog/ids"
	"sync"
)

// Hub wakes long-polling fetchers when a shard applies entries. It is safe
// for concurrent use; a nil *Hub never wakes anyone.
type Hub struct {
	mu      sync.Mutex
	waiters map[ids.ShardID]chan struct{}
	// imports counts snapshot imports per shard, begun and ended: odd while one
	// runs. A fetch that saw the count change read a shard that was being
	// replaced under it.
	imports map[ids.ShardID]uint64
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{waiters: make(map[ids.ShardID]chan struct{}), imports: make(map[ids.ShardID]uint64)}
}

// BeginImport marks the shard's data as being replaced by a snapshot until
// EndImport; fetches meanwhile fail with ErrRecovering.
func (h *Hub) BeginImport(shard ids.ShardID) { h.bumpImport(shard) }

// EndImport ends BeginImport and wakes the shard's waiters.
func (h *Hub) EndImport(shard ids.ShardID) {
	h.bumpImport(shard)
	h.Notify(shard)
}

func (h *Hub) bumpImport(shard ids.ShardID) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.imports[shard]++
	h.mu.Unlock()
}

// importGen returns the shard's import count; odd means an import is running.
func (h *Hub) importGen(shard ids.ShardID) uint64 {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.imports[shard]
}

// Wait returns a channel that is closed at the next apply to the shard, or
// when the shard is removed. Take it before reading the shard's state, so
// that an apply in between is not missed.
func (h *Hub) Wait(shard ids.ShardID) <-chan struct{} {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.waiters[shard]
	if !ok {
		c = make(chan struct{})
		h.waiters[shard] = c
	}
	return c
}

// Notify wakes every waiter of the shard. The state machine calls it after
// each committed Update.
func (h *Hub) Notify(shard ids.ShardID) {
	if h == nil {
		return
	}
	h.mu.Lock()
	c, ok := h.waiters[shard]
	delete(h.waiters, shard)
	h.mu.Unlock()
	if ok {
		close(c)
	}
}

// Remove wakes the shard's waiters and forgets the shard, for when its
// replica leaves this node; woken fetchers then find no state and fail.
func (h *Hub) Remove(shard ids.ShardID) { h.Notify(shard) }
