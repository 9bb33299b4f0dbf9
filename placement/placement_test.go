package placement

import (
	"errors"
	"fmt"
	"shardlog/ids"
	"slices"
	"testing"
)

func nodesOf(zones ...string) []Node {
	out := make([]Node, len(zones))
	for i, z := range zones {
		out[i] = Node{ID: ids.NodeID(i + 1), Zone: z}
	}
	return out
}

func TestPlacementGolden(t *testing.T) {
	tests := []struct {
		name     string
		nodes    []Node
		existing [][]ids.NodeID
		shards   int
		rf       int
		want     [][]ids.NodeID
	}{
		{
			name:   "one node",
			nodes:  nodesOf(""),
			shards: 2, rf: 1,
			want: [][]ids.NodeID{{1}, {1}},
		},
		{
			name:   "three nodes rf3 rotates leaders",
			nodes:  nodesOf("", "", ""),
			shards: 4, rf: 3,
			want: [][]ids.NodeID{{1, 2, 3}, {2, 1, 3}, {3, 1, 2}, {1, 2, 3}},
		},
		{
			name:   "four nodes rf2 pairs every node as leader once",
			nodes:  nodesOf("", "", "", ""),
			shards: 4, rf: 2,
			want: [][]ids.NodeID{{1, 2}, {3, 4}, {4, 3}, {2, 1}},
		},
		{
			name:     "existing load steers new replicas to the empty node",
			nodes:    nodesOf("", "", ""),
			existing: [][]ids.NodeID{{1, 2}, {2, 1}},
			shards:   1, rf: 2,
			want: [][]ids.NodeID{{3, 1}},
		},
		{
			name:     "replicas on departed nodes are ignored",
			nodes:    nodesOf("", ""),
			existing: [][]ids.NodeID{{9, 8, 7}, {1}},
			shards:   1, rf: 1,
			want: [][]ids.NodeID{{2}},
		},
		{
			name:   "one replica per zone",
			nodes:  nodesOf("a", "a", "b", "b", "c", "c"),
			shards: 3, rf: 3,
			want: [][]ids.NodeID{{1, 3, 5}, {2, 4, 6}, {3, 1, 5}},
		},
		{
			name:   "fewer zones than rf spreads evenly",
			nodes:  nodesOf("a", "a", "a", "b", "b", "b"),
			shards: 2, rf: 3,
			want: [][]ids.NodeID{{1, 2, 4}, {3, 5, 6}},
		},
		{
			name:   "small zone is filled once per shard",
			nodes:  nodesOf("a", "b", "b", "b"),
			shards: 3, rf: 3,
			want: [][]ids.NodeID{{1, 2, 3}, {2, 1, 4}, {3, 1, 4}},
		},
		{
			name:   "node order does not matter",
			nodes:  []Node{{ID: 30, Zone: "x"}, {ID: 10, Zone: "y"}, {ID: 20, Zone: "x"}},
			shards: 2, rf: 2,
			want: [][]ids.NodeID{{10, 20}, {30, 10}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlaceShards(tt.nodes, tt.existing, tt.shards, tt.rf)
			if err != nil {
				t.Fatalf("PlaceShards: %v", err)
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlacementErrors(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []Node
		shards, rf int
		want       error
	}{
		{"rf zero", nodesOf("a"), 1, 0, ErrInvalid},
		{"no shards", nodesOf("a"), 0, 1, ErrInvalid},
		{"duplicate node", []Node{{ID: 1}, {ID: 1}}, 1, 1, ErrInvalid},
		{"rf above nodes", nodesOf("a", "b"), 1, 3, ErrNotEnoughNodes},
		{"no nodes", nil, 1, 1, ErrNotEnoughNodes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlaceShards(tt.nodes, nil, tt.shards, tt.rf)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func BenchmarkPlaceShards(b *testing.B) {
	for _, n := range []int{3, 30} {
		nodes := make([]Node, n)
		for i := range nodes {
			nodes[i] = Node{ID: ids.NodeID(i + 1), Zone: fmt.Sprintf("z%d", i%3)}
		}
		b.Run(fmt.Sprintf("nodes=%d/shards=1000/rf=3", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := PlaceShards(nodes, nil, 1000, 3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
