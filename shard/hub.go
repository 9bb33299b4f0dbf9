package shard

import "sync"

// Hub wakes long-polling fetchers when a shard applies entries. It is safe
// for concurrent use; a nil *Hub never wakes anyone.
type Hub struct {
	mu      sync.Mutex
	waiters map[uint64]chan struct{}
}

// NewHub returns an empty Hub.
func NewHub() *Hub { return &Hub{waiters: make(map[uint64]chan struct{})} }

// Wait returns a channel that is closed at the next apply to the shard, or
// when the shard is removed. Take it before reading the shard's state, so
// that an apply in between is not missed.
func (h *Hub) Wait(shard uint64) <-chan struct{} {
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
func (h *Hub) Notify(shard uint64) {
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
func (h *Hub) Remove(shard uint64) { h.Notify(shard) }
