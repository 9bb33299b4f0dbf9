package placement

import (
	"cmp"
	"errors"
	"fmt"
	"shardlog/ids"
	"slices"
)

// ErrNotEnoughNodes is returned when the replication factor exceeds the number
// of candidate nodes.
var ErrNotEnoughNodes = errors.New("placement: not enough nodes")

// ErrInvalid is returned for malformed input: a replication factor or shard
// count below one, or duplicate node IDs.
var ErrInvalid = errors.New("placement: invalid input")

// Node is a candidate for hosting replicas.
type Node struct {
	// ID is the node's unique, non-zero identifier.
	ID ids.NodeID
	// Zone is the failure domain (rack, availability zone). The empty string
	// is a zone of its own.
	Zone string
}

// nodeLoad is one candidate node with its current counts.
type nodeLoad struct {
	id       ids.NodeID
	zone     int // index into planner.zones
	replicas int
	leaders  int
	used     bool // already chosen for the shard being placed
}

// zoneLoad is one zone with its total replica count.
type zoneLoad struct {
	name     string
	nodes    []int // indexes into planner.nodes, ascending node ID
	replicas int   // total replicas on the zone's nodes
	inShard  int   // replicas of the shard being placed
	free     int   // nodes not yet chosen for the shard being placed
	minFree  int   // replicas on the zone's least loaded free node (pickLeader)
}

// planner holds the working counts of one PlaceShards call.
type planner struct {
	nodes []nodeLoad // ascending node ID
	zones []zoneLoad // ascending zone name
}

// PlaceShards picks replicas for shards new shards of replication factor rf on
// nodes.
//
// existing lists every current shard's replica node IDs, the first being its
// preferred leader; IDs of nodes not in nodes are ignored. New replicas and
// preferred leaders go where there are fewest. The result has one entry per
// new shard holding rf distinct node IDs, the first being the preferred
// leader. The order of nodes does not matter; ties are broken by node ID.
func PlaceShards(nodes []Node, existing [][]ids.NodeID, shards, rf int) ([][]ids.NodeID, error) {
	if rf < 1 {
		return nil, fmt.Errorf("%w: replication factor %d is below 1", ErrInvalid, rf)
	}
	if shards < 1 {
		return nil, fmt.Errorf("%w: shard count %d is below 1", ErrInvalid, shards)
	}
	p, err := newPlanner(nodes, existing)
	if err != nil {
		return nil, err
	}
	if rf > len(p.nodes) {
		return nil, fmt.Errorf("%w: replication factor %d exceeds the %d nodes", ErrNotEnoughNodes, rf, len(p.nodes))
	}
	out := make([][]ids.NodeID, shards)
	for i := range out {
		out[i] = p.placeOne(rf)
	}
	return out, nil
}

// newPlanner sorts the candidates, groups them by zone and counts existing
// replicas and preferred leaders.
func newPlanner(nodes []Node, existing [][]ids.NodeID) (*planner, error) {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	zoneNames := make([]string, 0, len(sorted))
	for i, n := range sorted {
		if i > 0 && sorted[i-1].ID == n.ID {
			return nil, fmt.Errorf("%w: duplicate node ID %d", ErrInvalid, n.ID)
		}
		zoneNames = append(zoneNames, n.Zone)
	}
	slices.Sort(zoneNames)
	zoneNames = slices.Compact(zoneNames)

	p := &planner{
		nodes: make([]nodeLoad, len(sorted)),
		zones: make([]zoneLoad, len(zoneNames)),
	}
	for i, name := range zoneNames {
		p.zones[i].name = name
	}
	byID := make(map[ids.NodeID]int, len(sorted))
	for i, n := range sorted {
		z, _ := slices.BinarySearch(zoneNames, n.Zone)
		p.nodes[i] = nodeLoad{id: n.ID, zone: z}
		p.zones[z].nodes = append(p.zones[z].nodes, i)
		byID[n.ID] = i
	}
	for _, replicas := range existing {
		for j, id := range replicas {
			i, ok := byID[id]
			if !ok {
				continue
			}
			p.nodes[i].replicas++
			p.zones[p.nodes[i].zone].replicas++
			if j == 0 {
				p.nodes[i].leaders++
			}
		}
	}
	return p, nil
}

// placeOne chooses rf distinct nodes for one new shard and records them in the
// counts. The preferred leader comes first, the rest in ascending node ID.
//
// NB: choosing replicas and then a leader among them is not enough to keep
// leader counts balanced: followers would soak up the nodes with few
// leaderships and leave none of them to lead later shards. So the replica set
// is chosen preferring nodes with many leaderships, and the leader is then
// the node with the fewest leaderships that can be in the set without
// changing its shape: it joins the set in place of a member with the same
// replica count in an equivalent zone.
func (p *planner) placeOne(rf int) []ids.NodeID {
	for z := range p.zones {
		p.zones[z].inShard = 0
		p.zones[z].free = len(p.zones[z].nodes)
	}
	chosen := make([]int, 0, rf)
	for range rf {
		z := p.pickZone()
		n := p.pickNode(z)
		p.take(n)
		chosen = append(chosen, n)
	}
	leader, swapOut := p.pickLeader(chosen)
	if swapOut >= 0 {
		p.release(chosen[swapOut])
		p.take(leader)
		chosen[swapOut] = leader
	}
	p.nodes[leader].leaders++

	out := make([]ids.NodeID, 0, rf)
	out = append(out, p.nodes[leader].id)
	rest := make([]ids.NodeID, 0, rf-1)
	for _, n := range chosen {
		p.nodes[n].used = false
		if n != leader {
			rest = append(rest, p.nodes[n].id)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// take adds a replica of the current shard on node n.
func (p *planner) take(n int) {
	z := p.nodes[n].zone
	p.nodes[n].used = true
	p.nodes[n].replicas++
	p.zones[z].replicas++
	p.zones[z].inShard++
	p.zones[z].free--
}

// release undoes take.
func (p *planner) release(n int) {
	z := p.nodes[n].zone
	p.nodes[n].used = false
	p.nodes[n].replicas--
	p.zones[z].replicas--
	p.zones[z].inShard--
	p.zones[z].free++
}

// pickLeader returns the preferred leader for the chosen set and, when it is
// not in the set yet, the position in chosen of the member it replaces (else
// -1). Counts in p include the chosen replicas.
func (p *planner) pickLeader(chosen []int) (leader, swapOut int) {
	leader, swapOut = chosen[0], -1
	for z := range p.zones {
		if p.zones[z].free > 0 {
			p.zones[z].minFree = p.nodes[p.pickNode(z)].replicas
		}
	}
	for _, n := range chosen[1:] {
		if p.betterLeader(n, leader) {
			leader = n
		}
	}
	for x := range p.nodes {
		if p.nodes[x].used || !p.betterLeaderAfterTake(x, leader) {
			continue
		}
		if j := p.swapFor(x, chosen); j >= 0 {
			leader, swapOut = x, j
		}
	}
	return leader, swapOut
}

// betterLeaderAfterTake compares unchosen node x, as if it held a replica of
// the shard, with the current leader choice.
func (p *planner) betterLeaderAfterTake(x, leader int) bool {
	p.nodes[x].replicas++
	better := p.betterLeader(x, leader)
	p.nodes[x].replicas--
	return better
}

// swapFor returns the position in chosen of a member that unchosen node x can
// replace without changing the shape of the placement, or -1. The member must
// have had the same replica count as x before this shard, and live in x's
// zone or in a zone of equal size and load that holds one more replica of the
// shard than x's zone, with x among the least loaded free nodes of its zone.
// Of several members, the one with the most leaderships is replaced.
func (p *planner) swapFor(x int, chosen []int) int {
	nx := &p.nodes[x]
	zx := &p.zones[nx.zone]
	best := -1
	for j, y := range chosen {
		ny := &p.nodes[y]
		if ny.replicas-1 != nx.replicas {
			continue
		}
		if ny.zone != nx.zone {
			zy := &p.zones[ny.zone]
			if len(zy.nodes) != len(zx.nodes) || zy.inShard != zx.inShard+1 ||
				zy.replicas-1 != zx.replicas || zx.minFree != nx.replicas {
				continue
			}
		}
		if best < 0 || followerFirst(ny, &p.nodes[chosen[best]]) {
			best = j
		}
	}
	return best
}

// followerFirst reports whether a rather than b should give up its place.
func followerFirst(a, b *nodeLoad) bool {
	return cmp.Or(cmp.Compare(b.leaders, a.leaders), cmp.Compare(a.id, b.id)) < 0
}

// pickZone returns the zone for the next replica of the current shard: among
// zones with a free node, those holding the fewest replicas of this shard are
// allowed (one per zone while zones last, then as even as possible); of
// those, the zone with the fewest replicas per node wins, then the zone whose
// least loaded free node is lightest, then the lowest zone name.
func (p *planner) pickZone() int {
	best := -1
	for z := range p.zones {
		if p.zones[z].free == 0 {
			continue
		}
		if best < 0 || p.zoneLess(z, best) {
			best = z
		}
	}
	return best
}

// zoneLess reports whether zone a should take the next replica before zone b.
func (p *planner) zoneLess(a, b int) bool {
	za, zb := &p.zones[a], &p.zones[b]
	if za.inShard != zb.inShard {
		return za.inShard < zb.inShard
	}
	// Compare replicas per node without division: ra/na < rb/nb.
	ra := za.replicas * len(zb.nodes)
	rb := zb.replicas * len(za.nodes)
	if ra != rb {
		return ra < rb
	}
	na, nb := p.pickNode(a), p.pickNode(b)
	if c := p.nodeCompare(na, nb); c != 0 {
		return c < 0
	}
	return a < b // zones are sorted by name
}

// pickNode returns the best free node of zone z; the zone must have one.
func (p *planner) pickNode(z int) int {
	best := -1
	for _, n := range p.zones[z].nodes {
		if p.nodes[n].used {
			continue
		}
		if best < 0 || p.nodeCompare(n, best) < 0 {
			best = n
		}
	}
	return best
}

// nodeCompare orders nodes for taking a replica: fewest replicas, then most
// preferred leaderships (nodes with few are kept free to lead), then lowest ID.
func (p *planner) nodeCompare(a, b int) int {
	na, nb := &p.nodes[a], &p.nodes[b]
	return cmp.Or(
		cmp.Compare(na.replicas, nb.replicas),
		cmp.Compare(nb.leaders, na.leaders),
		cmp.Compare(na.id, nb.id),
	)
}

// betterLeader reports whether node a should lead a shard rather than node b:
// fewest preferred leaderships, then fewest replicas, then lowest ID.
func (p *planner) betterLeader(a, b int) bool {
	na, nb := &p.nodes[a], &p.nodes[b]
	return cmp.Or(
		cmp.Compare(na.leaders, nb.leaders),
		cmp.Compare(nb.replicas, na.replicas),
		cmp.Compare(na.id, nb.id),
	) < 0
}
