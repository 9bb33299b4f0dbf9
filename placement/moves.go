package placement

import (
	"cmp"
	"shardlog/ids"
	"slices"
)

// NodeStatus is a node as the controller sees it.
type NodeStatus struct {
	// ID is the node's unique identifier; see PlanMoves for repeated IDs.
	ID ids.NodeID
	// Zone is the failure domain; the empty string is a zone of its own.
	Zone string
	// Alive: gossip reports the node ALIVE. Only alive, non-draining nodes receive replicas.
	Alive bool
	// Gone: the node has been DEAD for longer than --dead-after (or was removed): its replicas must be replaced.
	Gone bool
	// Draining: an operator asked for the node to be emptied: its replicas move off, it receives none.
	Draining bool
}

// ShardStatus is one shard as the controller sees it.
type ShardStatus struct {
	// ShardID is the shard's Raft group ID.
	ShardID ids.ShardID
	// Replicas are the nodes holding the shard's replicas; Replicas[0] is the preferred leader.
	Replicas []ids.NodeID
	// Moving: a move of this shard is in progress; the plan leaves the shard alone (one move per shard at a time).
	Moving bool
}

// Snapshot is what PlanMoves and PlanPreferredLeaders decide from. The order
// of Nodes and Shards does not matter.
type Snapshot struct {
	// Nodes are the cluster's nodes.
	Nodes []NodeStatus
	// Shards are the cluster's data shards.
	Shards []ShardStatus
	// MaxMoves is how many new moves may start now (the caller subtracts the
	// moves in progress from --max-concurrent-moves). 0 or less: none.
	MaxMoves int
	// Balance enables balance moves (replica counts); repair and drain moves are always planned.
	Balance bool
}

// MoveReason says why a move was planned.
type MoveReason string

// The reasons for a move, in priority order.
const (
	ReasonDead    MoveReason = "dead"    // From is Gone
	ReasonDrain   MoveReason = "drain"   // From is Draining
	ReasonBalance MoveReason = "balance" // From holds more than its share
)

// PlannedMove replaces the replica of ShardID on From with a new one on To.
// The caller adds the replica on To (non-voting, caught up, promoted), then
// removes the one on From; To takes From's position in the replica list.
type PlannedMove struct {
	ShardID ids.ShardID // the shard whose membership changes
	From    ids.NodeID  // the node whose replica is removed
	To      ids.NodeID  // the node that receives the new replica
	Reason  MoveReason  // why the move was planned
}

// PreferredChange makes Node the preferred leader of ShardID: the caller moves
// Node to the front of the shard's replica list and keeps the relative order
// of the others.
type PreferredChange struct {
	ShardID ids.ShardID // the shard whose preferred leader changes
	Node    ids.NodeID  // holds a replica of the shard already; comes first
}

// moveNode is one node of a Snapshot with its working replica count.
type moveNode struct {
	id       ids.NodeID
	zone     int  // index into the sorted zone names
	alive    bool // Alive and not Gone: counts toward a shard's quorum
	gone     bool
	draining bool
	eligible bool // Alive, not Gone, not Draining: may receive replicas
	load     int  // replicas of all shards, after the moves planned so far
}

// moveShard is one shard of a Snapshot.
type moveShard struct {
	id       ids.ShardID
	replicas []int // node indexes in slot order, -1 for a missing node
	fixed    bool  // Moving, or malformed: left alone
	quorum   bool  // a majority of the replicas is on alive nodes
	planned  bool  // a move of it was planned in this call
}

// movePlanner holds the working state of one PlanMoves or PlanPreferredLeaders call.
type movePlanner struct {
	nodes     []moveNode  // ascending ID
	shards    []moveShard // ascending ID
	elig      []int       // indexes of the eligible nodes, ascending ID
	eligZones []bool      // per zone: it holds an eligible node
	numElig   int         // zones holding an eligible node
	anyMoving bool        // some shard has Moving set
}

// PlanMoves returns at most s.MaxMoves moves, in priority order: dead first,
// then drain, then balance; within a reason, in ascending shard ID. The
// result depends on the snapshot's content, not on the order of its lists.
//
//   - An eligible target is Alive, not Gone, not Draining, and does not
//     already hold a replica of the shard.
//   - A shard changes membership only if a majority of its replicas is on
//     Alive (not Gone) nodes, draining or not: Raft needs a quorum to commit
//     the change. Other shards are skipped (the caller reports them as
//     unavailable), as are Moving shards; a shard gets one move per plan.
//   - Repair (ReasonDead) replaces a replica on a Gone node, drain
//     (ReasonDrain) one on a Draining node that is not Gone, the lowest slot
//     first. A shard without an eligible target is skipped: it stays
//     under-replicated, which is not an error.
//   - Target: the eligible target whose zone holds the fewest of the shard's
//     remaining replicas, then the one with the fewest replicas (counting
//     the moves planned before it in this call), then the lowest node ID. So
//     when the eligible nodes and the remaining replicas span as many zones
//     as the shard has replicas, it never shares a zone with a remaining one.
//   - Balance (ReasonBalance) runs only when s.Balance is set, no repair or
//     drain move can be planned now (budget aside) and no shard is Moving,
//     so it never competes with repair. See planBalance.
//
// A node missing from s.Nodes (or listed twice) is neither alive nor gone: it
// loses no replicas, gets none and counts toward no quorum. A shard listed
// twice, or repeating a node, is left alone (its replicas still count).
//
// Applying the moves (To takes From's slot) and planning again with the same
// nodes reaches a plan with no moves: repair and drain moves take replicas
// off Gone and Draining nodes for good, and see planBalance for balance.
func PlanMoves(s Snapshot) []PlannedMove {
	if s.MaxMoves <= 0 {
		return nil
	}
	p := newMovePlanner(s)
	out := p.planRepairs()
	if len(out) > 0 {
		return out[:min(len(out), s.MaxMoves)]
	}
	if !s.Balance || p.anyMoving {
		return nil
	}
	return p.planBalance(s.MaxMoves)
}

// newMovePlanner sorts and indexes the snapshot and counts replicas.
func newMovePlanner(s Snapshot) *movePlanner {
	nodes := uniqueNodes(s.Nodes)
	zoneNames := make([]string, 0, len(nodes))
	for _, n := range nodes {
		zoneNames = append(zoneNames, n.Zone)
	}
	slices.Sort(zoneNames)
	zoneNames = slices.Compact(zoneNames)
	p := &movePlanner{nodes: make([]moveNode, len(nodes)), eligZones: make([]bool, len(zoneNames))}
	byID := make(map[ids.NodeID]int, len(nodes))
	for i, n := range nodes {
		z, _ := slices.BinarySearch(zoneNames, n.Zone)
		alive := n.Alive && !n.Gone
		p.nodes[i] = moveNode{id: n.ID, zone: z, alive: alive, gone: n.Gone, draining: n.Draining, eligible: alive && !n.Draining}
		byID[n.ID] = i
		if p.nodes[i].eligible {
			p.elig = append(p.elig, i)
			if !p.eligZones[z] {
				p.eligZones[z], p.numElig = true, p.numElig+1
			}
		}
	}
	shards := slices.Clone(s.Shards)
	slices.SortStableFunc(shards, func(a, b ShardStatus) int { return cmp.Compare(a.ShardID, b.ShardID) })
	p.shards = make([]moveShard, len(shards))
	for i, sh := range shards {
		p.shards[i] = p.newShard(sh, byID)
		dup := (i > 0 && shards[i-1].ShardID == sh.ShardID) ||
			(i+1 < len(shards) && shards[i+1].ShardID == sh.ShardID)
		p.shards[i].fixed = p.shards[i].fixed || dup
		p.anyMoving = p.anyMoving || sh.Moving
	}
	return p
}

// uniqueNodes returns in sorted by ID, without the IDs listed more than once.
// NB: dropping every entry, not keeping one, is independent of input order
// and safe: a node of unknown status gets no replicas and loses none.
func uniqueNodes(in []NodeStatus) []NodeStatus {
	sorted := slices.Clone(in)
	slices.SortStableFunc(sorted, func(a, b NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	out := make([]NodeStatus, 0, len(sorted)) // not sorted[:0]: the loop reads neighbours
	for i, n := range sorted {
		if (i > 0 && sorted[i-1].ID == n.ID) || (i+1 < len(sorted) && sorted[i+1].ID == n.ID) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// newShard indexes one shard's replicas, adds them to the node loads and
// decides whether the shard has a quorum.
func (p *movePlanner) newShard(sh ShardStatus, byID map[ids.NodeID]int) moveShard {
	m := moveShard{id: sh.ShardID, replicas: make([]int, len(sh.Replicas)), fixed: sh.Moving}
	live := 0
	for j, id := range sh.Replicas {
		if slices.Contains(sh.Replicas[:j], id) {
			m.fixed = true
		}
		n, ok := byID[id]
		if !ok {
			m.replicas[j] = -1
			continue
		}
		m.replicas[j] = n
		p.nodes[n].load++
		if p.nodes[n].alive {
			live++
		}
	}
	m.quorum = live > len(sh.Replicas)/2
	return m
}

// movable reports whether sh may get a move in this call.
func (sh *moveShard) movable() bool { return !sh.fixed && !sh.planned && sh.quorum }

// planRepairs returns every dead and then every drain move that can be
// planned now, ignoring the budget (the caller cuts the list; a prefix of it
// is what a smaller budget would have planned).
func (p *movePlanner) planRepairs() []PlannedMove {
	var out []PlannedMove
	for _, reason := range []MoveReason{ReasonDead, ReasonDrain} {
		for i := range p.shards {
			sh := &p.shards[i]
			if !sh.movable() {
				continue
			}
			slot := p.leavingSlot(sh, reason)
			if slot < 0 {
				continue
			}
			if to := p.pickTarget(sh, slot); to >= 0 {
				out = append(out, p.apply(i, slot, to, reason))
			}
		}
	}
	return out
}

// leavingSlot returns the lowest slot of sh whose replica must move for
// reason, or -1.
func (p *movePlanner) leavingSlot(sh *moveShard, reason MoveReason) int {
	for slot, n := range sh.replicas {
		if n < 0 {
			continue
		}
		nd := &p.nodes[n]
		if (reason == ReasonDead && nd.gone) || (reason == ReasonDrain && nd.draining && !nd.gone) {
			return slot
		}
	}
	return -1
}

// pickTarget returns the eligible target for the replica of sh in slot:
// fewest remaining replicas of sh in its zone, then fewest replicas, then
// lowest ID (nodes are sorted by ID, so the first of equals wins). -1 if
// there is none.
//
// NB: minimising the zone count is the zone rule in one step. When the
// eligible nodes and remaining replicas span at least len(replicas) zones,
// some zone with an eligible node holds no remaining replica (the remaining
// ones fill at most len(replicas)-1 zones), and its eligible nodes cannot
// hold the shard, so the minimum is zero; otherwise it is the least used
// zone, as the rule asks.
func (p *movePlanner) pickTarget(sh *moveShard, slot int) int {
	best, bestZC := -1, 0
	for n := range p.nodes {
		nd := &p.nodes[n]
		if !nd.eligible || slices.Contains(sh.replicas, n) {
			continue
		}
		zc := p.zoneCount(sh, slot, nd.zone)
		if best < 0 || cmp.Or(cmp.Compare(zc, bestZC), cmp.Compare(nd.load, p.nodes[best].load)) < 0 {
			best, bestZC = n, zc
		}
	}
	return best
}

// zoneCount returns how many replicas of sh other than the one in slot skip
// are in zone z.
func (p *movePlanner) zoneCount(sh *moveShard, skip, z int) int {
	c := 0
	for slot, n := range sh.replicas {
		if slot != skip && n >= 0 && p.nodes[n].zone == z {
			c++
		}
	}
	return c
}

// apply records the move of shard i's replica in slot to node to and
// returns it.
func (p *movePlanner) apply(i, slot, to int, reason MoveReason) PlannedMove {
	sh := &p.shards[i]
	from := sh.replicas[slot]
	p.nodes[from].load--
	p.nodes[to].load++
	sh.replicas[slot] = to
	sh.planned = true
	return PlannedMove{ShardID: sh.id, From: p.nodes[from].id, To: p.nodes[to].id, Reason: reason}
}

// planBalance returns up to budget balance moves, each of one replica from
// eligible node A to eligible node B, while two eligible nodes' counts differ
// by two or more. A and B are two or more apart if such a pair has a legal
// move (most loaded A, least loaded B first, then lower IDs); else one apart,
// in different zones, with B's zone the emptier (zoneGain). The shard is the
// lowest-ID movable one that A holds and B does not, whose zone rule holds
// (balanceZoneOK), preferring one A does not lead, so the preferred
// leadership stays put (To takes From's slot).
//
// NB: the zone rule can forbid every move between the most and the least
// loaded node (3 zones, rf 2, all of A's shards paired with B's zone); a
// step through a third node then makes room. A move two apart lowers the sum
// of squared node counts; one apart keeps it and lowers the sum over zones
// of (zone count)²/(zone size); so repeated planning stops. With zones of
// equal size (or none) it stops within one in the property tests; with
// unequal zones the zone rule can keep a small zone fuller or emptier than
// the rest, and counts are as even as it allows.
func (p *movePlanner) planBalance(budget int) []PlannedMove {
	var out []PlannedMove
	for len(out) < budget {
		m, ok := p.balanceOne()
		if !ok {
			break
		}
		out = append(out, m)
	}
	return out
}

// balanceOne plans the next balance move, if there is one.
func (p *movePlanner) balanceOne() (PlannedMove, bool) {
	byLoad := func(a, b int) int { return cmp.Compare(p.nodes[a].load, p.nodes[b].load) }
	to := slices.Clone(p.elig)
	slices.SortStableFunc(to, byLoad)
	from := slices.Clone(p.elig)
	slices.SortStableFunc(from, func(a, b int) int { return byLoad(b, a) })
	if len(to) == 0 || p.nodes[from[0]].load-p.nodes[to[0]].load < 2 {
		return PlannedMove{}, false
	}
	for _, gap := range []int{2, 1} {
		for _, a := range from {
			for _, b := range to {
				d := p.nodes[a].load - p.nodes[b].load
				if d < gap {
					break
				}
				if gap == 1 && (d != 1 || !p.zoneGain(a, b)) {
					continue
				}
				if i, slot := p.balanceShard(a, b); i >= 0 {
					return p.apply(i, slot, b, ReasonBalance), true
				}
			}
		}
	}
	return PlannedMove{}, false
}

// zoneGain reports whether a replica moving from node a to node b, in
// another zone, lowers the sum over zones of (zone count)² / (zone size),
// counting eligible nodes only.
func (p *movePlanner) zoneGain(a, b int) bool {
	za, zb := p.nodes[a].zone, p.nodes[b].zone
	var load, size [2]int
	for _, n := range p.elig {
		for k, z := range [2]int{za, zb} {
			if p.nodes[n].zone == z {
				load[k] += p.nodes[n].load
				size[k]++
			}
		}
	}
	// The change is (2·load_b+1)/size_b − (2·load_a−1)/size_a; below zero?
	return za != zb && (2*load[1]+1)*size[0] < (2*load[0]-1)*size[1]
}

// balanceShard returns the shard index and slot of the replica to move from
// node a to node b, or -1, -1.
func (p *movePlanner) balanceShard(a, b int) (int, int) {
	for _, leader := range []bool{false, true} {
		for i := range p.shards {
			sh := &p.shards[i]
			if !sh.movable() || slices.Contains(sh.replicas, b) {
				continue
			}
			slot := slices.Index(sh.replicas, a)
			if slot < 0 || (slot == 0) != leader || !p.balanceZoneOK(sh, slot, b) {
				continue
			}
			return i, slot
		}
	}
	return -1, -1
}

// balanceZoneOK reports whether moving the replica of sh in slot to node b
// keeps the zone rule: when the eligible nodes and the other replicas span
// enough zones, b's zone holds no other replica of sh; else it holds no more
// of them than the leaving replica's zone (the spread never gets worse).
func (p *movePlanner) balanceZoneOK(sh *moveShard, slot, b int) bool {
	var extra []int // zones of the other replicas without an eligible node
	for j, n := range sh.replicas {
		if j != slot && n >= 0 && !p.eligZones[p.nodes[n].zone] && !slices.Contains(extra, p.nodes[n].zone) {
			extra = append(extra, p.nodes[n].zone)
		}
	}
	zb := p.zoneCount(sh, slot, p.nodes[b].zone)
	if p.numElig+len(extra) >= len(sh.replicas) {
		return zb == 0
	}
	return zb <= p.zoneCount(sh, slot, p.nodes[sh.replicas[slot]].zone)
}

// leaderPlan holds the working state of one PlanPreferredLeaders call.
type leaderPlan struct {
	p       *movePlanner
	cands   [][]int // per shard: its replicas on eligible nodes, ascending ID
	lead    []int   // per shard: node index of its preferred leader if eligible, else -1
	count   []int   // per node: shards whose preferred leader it is
	changed []bool  // per shard: a change of it is part of the plan
	budget  int     // how many more shards may change
}

// PlanPreferredLeaders returns at most max changes of preferred leader
// (Replicas[0]), in ascending shard ID, that spread preferred leaderships
// evenly over the eligible nodes (Alive, not Gone, not Draining). The caller
// applies a change by moving Node to the front of the shard's replicas,
// keeping the relative order of the others. Node always holds a replica of
// the shard and is eligible. Moving shards, and shards without a replica on
// an eligible node, are left alone (a Moving shard still counts).
//
// First, each shard whose preferred leader is not eligible gets its eligible
// replica with the fewest leaderships (then lowest ID). Then, while a node u
// can hand a leadership down a chain of shards (u leads a shard with a
// replica on v, v leads one with a replica on w, ...) to a node with two
// fewer than u or less, a chain is applied (see augment): u loses one, the
// end gains one, the nodes between keep their counts.
//
// NB: swaps between two nodes are not enough: with counts 3, 2, 1 and no
// shard shared by the first and last node only a chain through the middle
// one narrows the spread. Without chains the counts are as even as the
// replica lists allow (a semi-matching without a cost-reducing path is
// optimal). So when every shard has the same number of replicas, all on
// eligible nodes, with replica counts within one, preferred counts end
// within one: sharing each shard equally among its replicas gives counts in
// [k, k+1] for some k, and flows are integral. A snapshot without chains or
// misplaced leaders gives no changes.
func PlanPreferredLeaders(s Snapshot, max int) []PreferredChange {
	if max <= 0 {
		return nil
	}
	lp := newLeaderPlan(newMovePlanner(s), max)
	lp.assignOrphans()
	for lp.budget > 0 && lp.augment() {
	}
	var out []PreferredChange
	for i, sh := range lp.p.shards {
		if lp.changed[i] && lp.lead[i] != sh.replicas[0] {
			out = append(out, PreferredChange{ShardID: sh.id, Node: lp.p.nodes[lp.lead[i]].id})
		}
	}
	return out
}

// newLeaderPlan counts the current preferred leaderships of eligible nodes.
func newLeaderPlan(p *movePlanner, budget int) *leaderPlan {
	n := len(p.shards)
	lp := &leaderPlan{p: p, cands: make([][]int, n), lead: slices.Repeat([]int{-1}, n),
		count: make([]int, len(p.nodes)), changed: make([]bool, n), budget: budget}
	for i, sh := range p.shards {
		for _, r := range sh.replicas {
			if r >= 0 && p.nodes[r].eligible {
				lp.cands[i] = append(lp.cands[i], r)
			}
		}
		slices.Sort(lp.cands[i])
		if len(sh.replicas) > 0 && slices.Contains(lp.cands[i], sh.replicas[0]) {
			lp.lead[i] = sh.replicas[0]
			lp.count[lp.lead[i]]++
		}
	}
	return lp
}

// assignOrphans gives each changeable shard whose preferred leader is not
// eligible its eligible replica with the fewest leaderships.
func (lp *leaderPlan) assignOrphans() {
	for i := 0; i < len(lp.p.shards) && lp.budget > 0; i++ {
		if sh := &lp.p.shards[i]; sh.fixed || lp.lead[i] >= 0 || len(lp.cands[i]) == 0 {
			continue
		}
		best := lp.cands[i][0]
		for _, n := range lp.cands[i][1:] {
			if lp.count[n] < lp.count[best] {
				best = n
			}
		}
		lp.lead[i] = best
		lp.count[best]++
		lp.changed[i] = true
		lp.budget--
	}
}

type step struct{ shard, to int } // a link of a chain: shard is to be led by node to

// augment applies a chain and reports whether there was one. It takes the
// shortest chain (then lowest start ID) among the nodes with the most
// leaderships that have one; if the budget cannot pay for it all, its first
// steps.
//
// NB: every node inside that chain has one leadership fewer than its start:
// with more it would start a chain of its own, shorter or from higher up. So
// a cut chain swaps the counts of its start and of the node it stops at, and
// leaves the rest as a shorter chain from the top count (nodes above gain
// none). A full chain lowers the sum of squared counts, a cut one shortens
// the top chain, so repeated plans end without chains even with max 1.
func (lp *leaderPlan) augment() bool {
	ledBy := make([][]int, len(lp.p.nodes))
	for i, sh := range lp.p.shards {
		if !sh.fixed && lp.lead[i] >= 0 {
			ledBy[lp.lead[i]] = append(ledBy[lp.lead[i]], i)
		}
	}
	starts := slices.Clone(lp.p.elig)
	if len(starts) == 0 {
		return false
	}
	slices.SortStableFunc(starts, func(a, b int) int { return cmp.Compare(lp.count[b], lp.count[a]) })
	var best []step
	top := lp.count[starts[0]] // count of best's start
	for _, u := range starts {
		if lp.count[u]-lp.count[starts[len(starts)-1]] < 2 || (best != nil && lp.count[u] < top) {
			break
		}
		if chain := lp.findChain(u, ledBy); chain != nil && (best == nil || len(chain) < len(best)) {
			best, top = chain, lp.count[u]
		}
	}
	for _, st := range best {
		if !lp.changed[st.shard] {
			if lp.budget == 0 {
				break
			}
			lp.budget--
		}
		lp.count[lp.lead[st.shard]]--
		lp.count[st.to]++
		lp.lead[st.shard] = st.to
		lp.changed[st.shard] = true
	}
	return best != nil
}

// findChain returns the shortest chain (breadth first, shards and nodes in
// ascending order) from node u to a node with two leaderships fewer, or nil.
func (lp *leaderPlan) findChain(u int, ledBy [][]int) []step {
	via := slices.Repeat([]int{-1}, len(lp.p.nodes)) // shard that reached the node, -1: not reached
	queue := []int{u}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, si := range ledBy[x] {
			for _, y := range lp.cands[si] {
				if y == u || via[y] >= 0 {
					continue
				}
				via[y] = si
				if lp.count[y] <= lp.count[u]-2 { // follow via back to u
					var chain []step
					for n := y; n != u; n = lp.lead[via[n]] {
						chain = append(chain, step{shard: via[n], to: n})
					}
					slices.Reverse(chain)
					return chain
				}
				queue = append(queue, y)
			}
		}
	}
	return nil
}
