package meta

import (
	"encoding/json"
	"fmt"
	"io"
	"shardlog/ids"
	"sync"

	"github.com/lni/dragonboat/v4/statemachine"
)

// StateMachine is the meta group's dragonboat regular (in-memory) state
// machine over a State.
//
// NB: Lookup runs concurrently with Update and RecoverFromSnapshot, so the
// state is behind a RWMutex and Lookup returns a deep copy.
type StateMachine struct {
	shardID, replicaID uint64
	onApply            func(index uint64)

	mu    sync.RWMutex
	state *State // guarded by mu
}

var _ statemachine.IStateMachine = (*StateMachine)(nil)

// NewStateMachine returns the factory dragonboat calls to create the meta
// state machine. onApply, if not nil, is called with each entry's index after
// it was applied, outside the lock; it must not block.
func NewStateMachine(onApply func(index uint64)) statemachine.CreateStateMachineFunc {
	return func(shardID, replicaID uint64) statemachine.IStateMachine {
		return &StateMachine{shardID: shardID, replicaID: replicaID, onApply: onApply, state: NewState()}
	}
}

// Update applies one log entry. Invalid commands are reported in the result,
// never as an error, so they cannot halt the replica.
func (m *StateMachine) Update(e statemachine.Entry) (statemachine.Result, error) {
	m.mu.Lock()
	r := m.state.ApplyBytes(e.Index, e.Cmd)
	m.mu.Unlock()
	if m.onApply != nil {
		m.onApply(e.Index)
	}
	return r, nil
}

// Lookup returns a deep copy of the State (*State), whatever the query.
func (m *StateMachine) Lookup(any) (any, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state.Clone(), nil
}

// SaveSnapshot writes the State as JSON.
func (m *StateMachine) SaveSnapshot(w io.Writer, _ statemachine.ISnapshotFileCollection, _ <-chan struct{}) error {
	m.mu.RLock()
	b, err := json.Marshal(m.state)
	m.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("meta: encode snapshot: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("meta: write snapshot: %w", err)
	}
	return nil
}

// RecoverFromSnapshot replaces the State with the one in the snapshot.
func (m *StateMachine) RecoverFromSnapshot(r io.Reader, _ []statemachine.SnapshotFile, _ <-chan struct{}) error {
	s, err := DecodeState(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
	return nil
}

// Close does nothing: the state lives in memory and is rebuilt from the
// snapshot and log on restart.
func (m *StateMachine) Close() error { return nil }

// DecodeState reads a State written as JSON (the snapshot format).
func DecodeState(r io.Reader) (*State, error) {
	s := NewState()
	if err := json.NewDecoder(r).Decode(s); err != nil {
		return nil, fmt.Errorf("meta: decode state: %w", err)
	}
	if s.Nodes == nil {
		s.Nodes = map[ids.NodeID]*Node{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*Topic{}
	}
	if s.Moves == nil {
		s.Moves = map[ids.ShardID]*Move{}
	}
	if s.Removed == nil {
		s.Removed = map[ids.NodeID]ids.NodeNum{}
	}
	if s.NextNodeNum == 0 {
		s.NextNodeNum = 1
	}
	return s, nil
}
