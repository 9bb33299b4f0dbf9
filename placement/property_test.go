package placement

import (
	"fmt"
	"math/rand/v2"
	"shardlog/ids"
	"slices"
	"testing"
)

// cluster is one randomly generated placement problem.
type cluster struct {
	nodes      []Node
	existing   [][]ids.NodeID
	shards, rf int
	// balanced is true when existing came from PlaceShards on the same nodes
	// (or is empty), so replica counts must stay balanced.
	balanced bool
	// leaderSlack is the allowed spread of preferred-leader counts: 1 when
	// every earlier shard had the same rf, 2 when rf varied.
	leaderSlack int
}

func (c cluster) String() string {
	return fmt.Sprintf("nodes=%v existing=%v shards=%d rf=%d balanced=%v", c.nodes, c.existing, c.shards, c.rf, c.balanced)
}

// randomCluster draws 1..9 nodes with unique IDs over 0..4 zones (0 means no
// zone names), rf 1..min(7,n), 1..64 shards and an existing placement.
func randomCluster(t *testing.T, r *rand.Rand) cluster {
	t.Helper()
	n := 1 + r.IntN(9)
	zones := r.IntN(5)
	equalZones := r.IntN(2) == 0
	perm := r.Perm(100)[:n]
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i].ID = ids.NodeID(perm[i]) + 1
		switch {
		case zones == 0:
		case equalZones:
			nodes[i].Zone = fmt.Sprintf("z%d", i%zones)
		default:
			nodes[i].Zone = fmt.Sprintf("z%d", r.IntN(zones))
		}
	}
	c := cluster{nodes: nodes, rf: 1 + r.IntN(min(7, n)), shards: 1 + r.IntN(64), balanced: true, leaderSlack: 1}
	switch mode := r.IntN(4); mode {
	case 0: // empty cluster
	case 1, 2: // earlier topics placed by PlaceShards, with the same or other rf
		for range 1 + r.IntN(3) {
			rf := c.rf
			if mode == 2 {
				rf = 1 + r.IntN(min(7, n))
			}
			if rf != c.rf {
				c.leaderSlack = 2
			}
			prev, err := PlaceShards(nodes, c.existing, 1+r.IntN(32), rf)
			if err != nil {
				t.Fatalf("seed placement: %v", err)
			}
			c.existing = append(c.existing, prev...)
		}
	default: // arbitrary placements, including nodes that left
		c.balanced = false
		for range r.IntN(40) {
			k := 1 + r.IntN(n)
			sh := make([]ids.NodeID, 0, k)
			for _, i := range r.Perm(n)[:k] {
				sh = append(sh, nodes[i].ID)
			}
			if r.IntN(4) == 0 {
				sh = append(sh, 1000+ids.NodeID(r.IntN(5)))
			}
			c.existing = append(c.existing, sh)
		}
	}
	return c
}

func zoneSizes(nodes []Node) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n.Zone]++
	}
	return m
}

func spread(counts map[ids.NodeID]int, nodes []ids.NodeID) int {
	lo, hi := int(^uint(0)>>1), 0
	for _, id := range nodes {
		lo, hi = min(lo, counts[id]), max(hi, counts[id])
	}
	return hi - lo
}

func TestPlacementProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := 3000
	if testing.Short() {
		cases = 1000
	}
	for i := range cases {
		c := randomCluster(t, r)
		got, err := PlaceShards(c.nodes, c.existing, c.shards, c.rf)
		if err != nil {
			t.Fatalf("case %d %v: %v", i, c, err)
		}
		checkPlacement(t, c, got)

		// Determinism: the same input gives the same output, and the
		// order of nodes does not matter.
		shuffled := slices.Clone(c.nodes)
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		again, err := PlaceShards(shuffled, c.existing, c.shards, c.rf)
		if err != nil || !slices.EqualFunc(got, again, slices.Equal) {
			t.Fatalf("case %d %v: not deterministic: %v vs %v (%v)", i, c, got, again, err)
		}
	}
}

// checkPlacement asserts the properties of one PlaceShards result.
func checkPlacement(t *testing.T, c cluster, got [][]ids.NodeID) {
	t.Helper()
	zoneOf := map[ids.NodeID]string{}
	all := make([]ids.NodeID, 0, len(c.nodes))
	for _, n := range c.nodes {
		zoneOf[n.ID] = n.Zone
		all = append(all, n.ID)
	}
	sizes := zoneSizes(c.nodes)
	if len(got) != c.shards {
		t.Fatalf("%v: got %d shards", c, len(got))
	}
	for _, sh := range got {
		if len(sh) != c.rf {
			t.Fatalf("%v: shard %v has %d replicas", c, sh, len(sh))
		}
		inZone := map[string]int{}
		for j, id := range sh {
			if _, ok := zoneOf[id]; !ok {
				t.Fatalf("%v: shard %v uses unknown node %d", c, sh, id)
			}
			if slices.Contains(sh[:j], id) {
				t.Fatalf("%v: shard %v repeats node %d", c, sh, id)
			}
			inZone[zoneOf[id]]++
		}
		// Zone rule: one per zone while zones last; otherwise water filled,
		// so a zone with a free node never has two fewer than another.
		for za, ca := range inZone {
			if len(sizes) >= c.rf && ca > 1 {
				t.Fatalf("%v: shard %v puts %d replicas in zone %q", c, sh, ca, za)
			}
			for zb, size := range sizes {
				if inZone[zb] < size && ca > inZone[zb]+1 {
					t.Fatalf("%v: shard %v: zone %q has %d, zone %q only %d of %d nodes", c, sh, za, ca, zb, inZone[zb], size)
				}
			}
		}
	}
	if !c.balanced {
		return
	}
	replicas, leaders := map[ids.NodeID]int{}, map[ids.NodeID]int{}
	for _, sh := range slices.Concat(c.existing, got) {
		leaders[sh[0]]++
		for _, id := range sh {
			replicas[id]++
		}
	}
	equal := true
	for _, s := range sizes {
		equal = equal && s == sizes[c.nodes[0].Zone]
	}
	if equal {
		if d := spread(replicas, all); d > 1 {
			t.Fatalf("%v: replica counts spread %d: %v", c, d, replicas)
		}
		if d := spread(leaders, all); d > c.leaderSlack {
			t.Fatalf("%v: leader counts spread %d: %v got %v", c, d, leaders, got)
		}
		return
	}
	for z := range sizes {
		var inZone []ids.NodeID
		for _, n := range c.nodes {
			if n.Zone == z {
				inZone = append(inZone, n.ID)
			}
		}
		if d := spread(replicas, inZone); d > 1 {
			t.Fatalf("%v: replica counts in zone %q spread %d: %v", c, z, d, replicas)
		}
	}
}
