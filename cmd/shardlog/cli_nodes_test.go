package main

import (
	"testing"

	"shardlog/proto/shardlogv1"
)

func TestCLIShardStatusMarks(t *testing.T) {
	mv := &shardlogv1.MoveInfo{FromReplicaId: 7, FromNode: 3, ToReplicaId: 40, ToNode: 5, Phase: "catching_up"}
	tests := []struct {
		name string
		sh   *shardlogv1.ShardInfo
		want string
	}{
		{name: "ok", sh: &shardlogv1.ShardInfo{}, want: "ok"},
		{name: "under-replicated", sh: &shardlogv1.ShardInfo{UnderReplicated: true}, want: "under-replicated"},
		{name: "moving", sh: &shardlogv1.ShardInfo{Move: mv}, want: "moving r7@3->r40@5 catching_up"},
		{name: "all", sh: &shardlogv1.ShardInfo{StatusError: "no leader", UnderReplicated: true, Move: mv},
			want: "no leader; under-replicated; moving r7@3->r40@5 catching_up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := shardStatus(tc.sh); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
