package placement

import (
	"shardlog/ids"
	"slices"
	"testing"
	"time"
)

// led returns a shard led by the planning node with replicas on nodes, the
// first preferred; replica IDs are shardID*10 + position.
func led(shardID ids.ShardID, nodes ...ids.NodeID) LedShard {
	sh := LedShard{ShardID: shardID}
	for i, n := range nodes {
		sh.Replicas = append(sh.Replicas, Replica{ReplicaID: ids.ReplicaID(shardID)*10 + ids.ReplicaID(i), NodeID: n})
	}
	return sh
}

func alive(d time.Duration) Liveness { return Liveness{Alive: true, AliveFor: d} }

func TestPlacementPlanLeaderTransfers(t *testing.T) {
	const grace = 10 * time.Second
	up := map[ids.NodeID]Liveness{1: alive(time.Hour), 2: alive(time.Hour), 3: alive(time.Hour)}
	tests := []struct {
		name  string
		led   []LedShard
		nodes map[ids.NodeID]Liveness
		want  []Transfer
	}{
		{name: "nothing led, no plan", nodes: up},
		{
			name:  "preferred alive long enough gets the leadership",
			led:   []LedShard{led(16, 2, 1, 3)},
			nodes: up,
			want:  []Transfer{{ShardID: 16, ToReplica: 160, ToNode: 2}},
		},
		{name: "already the preferred leader", led: []LedShard{led(16, 1, 2, 3)}, nodes: up},
		{name: "single replica", led: []LedShard{led(16, 2)}, nodes: up},
		{name: "no replicas", led: []LedShard{{ShardID: 16}}, nodes: up},
		{
			name:  "preferred not alive",
			led:   []LedShard{led(16, 2, 1, 3)},
			nodes: map[ids.NodeID]Liveness{1: alive(time.Hour), 2: {Alive: false, AliveFor: time.Hour}},
		},
		{
			name:  "preferred unknown to membership",
			led:   []LedShard{led(16, 4, 1, 3)},
			nodes: up,
		},
		{
			name:  "preferred alive too briefly",
			led:   []LedShard{led(16, 2, 1, 3)},
			nodes: map[ids.NodeID]Liveness{2: alive(grace - time.Millisecond)},
		},
		{
			name:  "preferred alive exactly the grace period",
			led:   []LedShard{led(16, 2, 1, 3)},
			nodes: map[ids.NodeID]Liveness{2: alive(grace)},
			want:  []Transfer{{ShardID: 16, ToReplica: 160, ToNode: 2}},
		},
		{
			name:  "only the preferred replica counts, not other live followers",
			led:   []LedShard{led(16, 2, 1, 3)},
			nodes: map[ids.NodeID]Liveness{1: alive(time.Hour), 2: {}, 3: alive(time.Hour)},
		},
		{
			name: "several shards keep their order, ineligible ones are skipped",
			led:  []LedShard{led(20, 3, 1), led(17, 1, 2), led(18, 2, 1), led(19, 4, 1)},
			nodes: map[ids.NodeID]Liveness{
				1: alive(time.Hour), 2: alive(time.Minute), 3: alive(time.Hour), 4: alive(time.Second),
			},
			want: []Transfer{{ShardID: 20, ToReplica: 200, ToNode: 3}, {ShardID: 18, ToReplica: 180, ToNode: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view := LeaderView{Self: 1, Led: tt.led, Nodes: tt.nodes, Grace: grace}
			got := PlanLeaderTransfers(view)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if again := PlanLeaderTransfers(view); !slices.Equal(again, got) {
				t.Fatalf("second plan %+v differs from the first %+v", again, got)
			}
		})
	}
}
