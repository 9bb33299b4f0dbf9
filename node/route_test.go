package node

import (
	"context"
	"testing"
	"time"

	"shardlog/ids"
	"shardlog/meta"
)

func TestRouteBackoff(t *testing.T) {
	want := []time.Duration{10, 20, 40, 80, 100, 100, 100}
	for i, w := range want {
		if got := routeBackoff(i); got != w*time.Millisecond {
			t.Errorf("routeBackoff(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := routeBackoff(1000); got != 100*time.Millisecond {
		t.Errorf("routeBackoff(1000) = %v, want the 100 ms cap", got)
	}
}

func TestPollWait(t *testing.T) {
	bg := context.Background()
	short, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	long, cancel2 := context.WithTimeout(bg, 60*time.Second)
	defer cancel2()
	past, cancel3 := context.WithTimeout(bg, -time.Second)
	defer cancel3()
	tests := []struct {
		name         string
		ctx          context.Context
		asked, limit time.Duration
		lo, hi       time.Duration
	}{
		{"no deadline: what was asked", bg, 5 * time.Second, 30 * time.Second, 5 * time.Second, 5 * time.Second},
		{"no deadline: at most the limit", bg, time.Minute, 30 * time.Second, 30 * time.Second, 30 * time.Second},
		{"deadline first: a tenth left to answer", short, 30 * time.Second, 30 * time.Second, 1700 * time.Millisecond, 1800 * time.Millisecond},
		{"deadline far: at most a second left", long, time.Minute, time.Minute, 58900 * time.Millisecond, 59 * time.Second},
		{"deadline passed: no wait", past, time.Second, time.Minute, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pollWait(tt.ctx, tt.asked, tt.limit); got < tt.lo || got > tt.hi {
				t.Fatalf("pollWait = %v, want in [%v, %v]", got, tt.lo, tt.hi)
			}
		})
	}
}

// Each hop's forward must outlast the hops after it: the entry node's attempt waits
// for the next node's, which waits for the leader's proposal.
func TestForwardTimeoutShrinksPerHop(t *testing.T) {
	n := &Node{cfg: Config{ProposalTimeout: 2 * time.Second}}
	prev := time.Duration(1 << 62)
	for hops := uint32(0); hops < maxHops; hops++ {
		got := n.forwardTimeout(hops)
		if got <= n.cfg.ProposalTimeout+n.cfg.SequenceWait || got >= prev {
			t.Fatalf("forwardTimeout(%d) = %v after %v", hops, got, prev)
		}
		prev = got
	}
}

func TestRotateReplicasSkipsDownNodes(t *testing.T) {
	rs := []meta.Replica{{ReplicaID: 1, NodeID: 10}, {ReplicaID: 2, NodeID: 20}, {ReplicaID: 3, NodeID: 30}}
	tests := []struct {
		name string
		down map[ids.NodeID]bool
		want []ids.ReplicaID // replica IDs picked for attempts 0..5
	}{
		{"none down", nil, []ids.ReplicaID{1, 2, 3, 1, 2, 3}},
		{"one down", map[ids.NodeID]bool{20: true}, []ids.ReplicaID{1, 3, 1, 3, 1, 3}},
		{"all down: every replica in turn", map[ids.NodeID]bool{10: true, 20: true, 30: true}, []ids.ReplicaID{1, 2, 3, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &Node{}
			n.down.Store(&tt.down)
			for i, w := range tt.want {
				if got := n.rotateReplicas(rs, i).ReplicaID; got != w {
					t.Fatalf("attempt %d picked replica %d, want %d", i, got, w)
				}
			}
		})
	}
}
