package shard

import (
	"context"
	"shardlog/ids"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"
)

// fakeRaft is a Raft of one shard whose log is applied at once to a real state
// machine (a harness), in the order of the Propose calls; its fields make it
// fail the way dragonboat can.
type fakeRaft struct {
	h *harness

	mu         sync.Mutex
	proposeErr error                // Propose fails with it (not leader, busy)
	waitErr    error                // Wait fails with it instead of returning the Result
	result     *statemachine.Result // Wait returns it instead of what Update gave
	hold       chan struct{}        // when set, Wait blocks until it is closed or ctx ends
	leader     bool
	readErr    error
	onRead     func() // runs on each ReadIndex, before it returns
	reads      int
	proposed   [][]byte
}

func newFakeRaft(t *testing.T) *fakeRaft {
	t.Helper()
	return &fakeRaft{h: newHarness(t, memStore(t), testShard, 1), leader: true}
}

const testShard = 20

func (f *fakeRaft) Propose(shardID ids.ShardID, cmd []byte, _ time.Duration) (Proposal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if shardID != testShard {
		return nil, dragonboat.ErrShardNotFound
	}
	if f.proposeErr != nil {
		return nil, f.proposeErr
	}
	f.proposed = append(f.proposed, cmd)
	p := &fakeProposal{res: f.h.update(cmd)[0], err: f.waitErr, hold: f.hold}
	if f.result != nil {
		p.res = *f.result
	}
	return p, nil
}

func (f *fakeRaft) ReadIndex(ctx context.Context, _ ids.ShardID) error {
	f.mu.Lock()
	f.reads++
	err, onRead := f.readErr, f.onRead
	f.mu.Unlock()
	if err == nil && onRead != nil {
		onRead()
	}
	return err
}

func (f *fakeRaft) IsLeader(ids.ShardID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

// commands decodes what was proposed, in order.
func (f *fakeRaft) commands(t *testing.T) []command {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]command, len(f.proposed))
	for i, c := range f.proposed {
		cmd, err := decodeCommand(c)
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		out[i] = cmd
	}
	return out
}

type fakeProposal struct {
	res  statemachine.Result
	err  error
	hold chan struct{}
}

// Wait is what node's dragonboat proposal does: the outcome, or ErrTimeout
// (outcome unknown) when ctx ends first.
func (p *fakeProposal) Wait(ctx context.Context) (statemachine.Result, error) {
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-ctx.Done():
			return statemachine.Result{}, dragonboat.ErrTimeout
		}
	}
	return p.res, p.err
}

func testReplicas(f *fakeRaft) *Replicas {
	return NewReplicas(f, f.h.store, f.h.hub, ReplicasConfig{ProposalTimeout: time.Second, SequenceWait: 5 * time.Second})
}
