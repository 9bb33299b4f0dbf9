package placement

import (
	"fmt"
	"math/rand/v2"
	"shardlog/ids"
	"slices"
	"testing"
)

// healCase is one randomly generated self-healing problem.
type healCase struct {
	snap Snapshot
	// placed is true when the replicas came from PlaceShards (else they are
	// random); joined nodes were added empty after the placement. With
	// placed and no joined node, each shard's replicas start in distinct
	// zones when all nodes span enough zones.
	placed bool
	joined int
}

func (c healCase) String() string {
	return fmt.Sprintf("placed=%v joined=%d max=%d balance=%v nodes=%+v shards=%+v",
		c.placed, c.joined, c.snap.MaxMoves, c.snap.Balance, c.snap.Nodes, c.snap.Shards)
}

// randomHealCase draws 3..9 nodes over 0..3 zones (0: no zone names; zones
// of equal or random sizes) and 1..60 shards of rf 1..3, placed by
// PlaceShards or at random, in shuffled order; up to two nodes join empty
// after the placement, and in one case in four a tenth of the shards are
// Moving. Faults: none, or
// gone and draining nodes, or also nodes that are down but not gone.
func randomHealCase(t *testing.T, r *rand.Rand) healCase {
	t.Helper()
	n := 3 + r.IntN(7)
	zones, equal, faults := r.IntN(4), r.IntN(2) == 0, r.IntN(3)
	perm := r.Perm(100)[:n]
	nodes := make([]Node, n)
	status := make([]NodeStatus, n)
	for i := range nodes {
		nodes[i].ID = ids.NodeID(perm[i]) + 1
		switch {
		case zones == 0:
		case equal:
			nodes[i].Zone = fmt.Sprintf("z%d", i%zones)
		default:
			nodes[i].Zone = fmt.Sprintf("z%d", r.IntN(zones))
		}
		status[i] = randomStatus(r, nodes[i], faults)
	}
	joined, movingRate := r.IntN(3), 0
	if r.IntN(4) == 0 {
		movingRate = 10
	}
	rf, count := 1+r.IntN(min(3, n-joined)), 1+r.IntN(60)
	c := healCase{placed: r.IntN(4) != 0, joined: joined}
	c.snap = Snapshot{Nodes: status, MaxMoves: 1 + r.IntN(5), Balance: r.IntN(5) != 0}
	placed, err := PlaceShards(nodes[:n-joined], nil, count, rf)
	if err != nil {
		t.Fatalf("seed placement: %v", err)
	}
	for i, p := range placed {
		if !c.placed {
			p = nil
			for _, j := range r.Perm(n - joined)[:rf] {
				p = append(p, nodes[j].ID)
			}
		}
		c.snap.Shards = append(c.snap.Shards, ShardStatus{ShardID: ids.ShardID(16 + i), Replicas: p, Moving: movingRate > 0 && r.IntN(movingRate) == 0})
	}
	c.snap = shuffled(c.snap, r)
	return c
}

// randomStatus returns node's status: alive, or with faults > 0 one in five
// gone and one in ten draining (alive or not), and with faults > 1 one in
// ten down but not gone.
func randomStatus(r *rand.Rand, node Node, faults int) NodeStatus {
	s := NodeStatus{ID: node.ID, Zone: node.Zone, Alive: true}
	if faults == 0 {
		return s
	}
	switch r.IntN(10) {
	case 0, 1:
		s.Alive, s.Gone = false, true
	case 2:
		s.Draining = true
		s.Alive = r.IntN(2) == 0
	case 3:
		s.Alive = faults == 1
	}
	return s
}

// healView indexes a snapshot's nodes for the checks.
type healView struct {
	byID  map[ids.NodeID]NodeStatus
	elig  []ids.NodeID    // eligible nodes
	zones map[string]bool // zones of eligible nodes
}

func newHealView(s Snapshot) healView {
	v := healView{byID: map[ids.NodeID]NodeStatus{}, zones: map[string]bool{}}
	for _, n := range s.Nodes {
		v.byID[n.ID] = n
		if v.eligible(n.ID) {
			v.elig = append(v.elig, n.ID)
			v.zones[n.Zone] = true
		}
	}
	return v
}

func (v healView) eligible(id ids.NodeID) bool {
	n, ok := v.byID[id]
	return ok && n.Alive && !n.Gone && !n.Draining
}

func (v healView) quorum(sh ShardStatus) bool {
	live := 0
	for _, id := range sh.Replicas {
		if n := v.byID[id]; n.Alive && !n.Gone {
			live++
		}
	}
	return live > len(sh.Replicas)/2
}

// zoneRuleHolds reports whether moving sh's replica from from to to keeps
// the zone rule: when the eligible nodes and the remaining replicas span at
// least len(sh.Replicas) zones, to's zone holds no remaining replica.
func (v healView) zoneRuleHolds(sh ShardStatus, from, to ids.NodeID) bool {
	span := map[string]bool{}
	for z := range v.zones {
		span[z] = true
	}
	used := false
	for _, id := range sh.Replicas {
		if n, ok := v.byID[id]; ok && id != from {
			span[n.Zone] = true
			used = used || n.Zone == v.byID[to].Zone
		}
	}
	return len(span) < len(sh.Replicas) || !used
}

var reasonRank = map[MoveReason]int{ReasonDead: 0, ReasonDrain: 1, ReasonBalance: 2}

// checkMoves asserts the invariants of one PlanMoves result.
func checkMoves(t *testing.T, c healCase, moves []PlannedMove) {
	t.Helper()
	v := newHealView(c.snap)
	if len(moves) > c.snap.MaxMoves {
		t.Fatalf("%v: %d moves over the budget: %+v", c, len(moves), moves)
	}
	seen := map[ids.ShardID]bool{}
	for i, m := range moves {
		j := slices.IndexFunc(c.snap.Shards, func(sh ShardStatus) bool { return sh.ShardID == m.ShardID })
		if j < 0 || seen[m.ShardID] {
			t.Fatalf("%v: move %+v of an unknown shard or a second one", c, m)
		}
		sh, from := c.snap.Shards[j], v.byID[m.From]
		seen[m.ShardID] = true
		switch {
		case !v.eligible(m.To) || slices.Contains(sh.Replicas, m.To):
			t.Fatalf("%v: move %+v to an ineligible node", c, m)
		case !slices.Contains(sh.Replicas, m.From) || sh.Moving || !v.quorum(sh):
			t.Fatalf("%v: move %+v from a non-replica, of a Moving shard or without quorum", c, m)
		case m.Reason == ReasonDead && !from.Gone,
			m.Reason == ReasonDrain && (!from.Draining || from.Gone),
			m.Reason == ReasonBalance && !v.eligible(m.From):
			t.Fatalf("%v: move %+v has the wrong reason", c, m)
		case i > 0 && reasonRank[moves[i-1].Reason] > reasonRank[m.Reason]:
			t.Fatalf("%v: moves out of priority order: %+v", c, moves)
		case m.Reason == ReasonBalance && reasonRank[moves[0].Reason] < reasonRank[ReasonBalance]:
			t.Fatalf("%v: balance move planned beside repairs: %+v", c, moves)
		case !v.zoneRuleHolds(sh, m.From, m.To):
			t.Fatalf("%v: move %+v breaks the zone rule", c, m)
		}
	}
}

// counts returns the replica (or, with leaders, preferred leader) counts of
// the eligible nodes.
func counts(v healView, shards []ShardStatus, leaders bool) map[ids.NodeID]int {
	out := map[ids.NodeID]int{}
	for _, id := range v.elig {
		out[id] = 0
	}
	for _, sh := range shards {
		for j, id := range sh.Replicas {
			if _, ok := out[id]; ok && (!leaders || j == 0) {
				out[id]++
			}
		}
	}
	return out
}

func countSpread[K comparable](m map[K]int) int {
	lo, hi, first := 0, 0, true
	for _, c := range m {
		if first {
			lo, hi, first = c, c, false
		}
		lo, hi = min(lo, c), max(hi, c)
	}
	return hi - lo
}

// shuffled returns s with its node and shard lists in random order.
func shuffled(s Snapshot, r *rand.Rand) Snapshot {
	s.Nodes, s.Shards = slices.Clone(s.Nodes), slices.Clone(s.Shards)
	r.Shuffle(len(s.Nodes), func(a, b int) { s.Nodes[a], s.Nodes[b] = s.Nodes[b], s.Nodes[a] })
	r.Shuffle(len(s.Shards), func(a, b int) { s.Shards[a], s.Shards[b] = s.Shards[b], s.Shards[a] })
	return s
}

// roundBound is how many plan-and-apply rounds a case may take: every move
// needs at least one round, and the tests never see more than a few moves
// per replica.
func roundBound(s Snapshot) int {
	n := 20
	for _, sh := range s.Shards {
		n += 4 * len(sh.Replicas)
	}
	return n
}

// TestPlacementPlanMovesProperties plans and applies moves on random
// clusters until a plan is empty, checking every plan (budget, eligible
// targets, quorum, one move per shard, reasons in priority order, the zone
// rule, independence of input order) and the settled state: replicas stay
// on Gone or Draining nodes only when no eligible target exists or the
// shard cannot move; replica counts over eligible nodes are within one when
// zones are of equal size and every replica is on an eligible node (an
// observed bound: 150,000 cases over five seeds passed; it is not proven).
// Preferred leaders are planned to their fixpoint before and after, with a
// random max of 1..5; see checkLeaderBalance for their bound.
func TestPlacementPlanMovesProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 26))
	for range 500 {
		c := randomHealCase(t, r)
		checkPreferred(t, c, r)
		c = settle(t, c, r)
		checkSettled(t, c)
		checkPreferred(t, c, r)
	}
}

// settle plans and applies moves until a plan is empty, checking every plan,
// and returns the settled case.
func settle(t *testing.T, c healCase, r *rand.Rand) healCase {
	t.Helper()
	for range roundBound(c.snap) {
		moves := PlanMoves(c.snap)
		checkMoves(t, c, moves)
		if again := PlanMoves(shuffled(c.snap, r)); !slices.Equal(again, moves) {
			t.Fatalf("%v: shuffled input plans %+v, not %+v", c, again, moves)
		}
		if len(moves) == 0 {
			return c
		}
		c.snap.Shards = applyMoves(c.snap.Shards, moves)
	}
	t.Fatalf("%v: no fixpoint after %d rounds", c, roundBound(c.snap))
	return c
}

// allEligible reports whether no shard is Moving and every replica is on an
// eligible node, so nothing limits the balance but the zone rule.
func allEligible(v healView, shards []ShardStatus) bool {
	for _, sh := range shards {
		if sh.Moving || !slices.ContainsFunc(sh.Replicas, v.eligible) {
			return false
		}
		for _, id := range sh.Replicas {
			if !v.eligible(id) {
				return false
			}
		}
	}
	return true
}

// equalZones reports whether the eligible nodes' zones are all of one size.
func equalZones(v healView) bool {
	size := map[string]int{}
	for _, id := range v.elig {
		size[v.byID[id].Zone]++
	}
	for _, s := range size {
		if s != size[v.byID[v.elig[0]].Zone] {
			return false
		}
	}
	return true
}

// checkSettled asserts the state reached when PlanMoves has nothing left.
func checkSettled(t *testing.T, c healCase) {
	t.Helper()
	v := newHealView(c.snap)
	for _, sh := range c.snap.Shards {
		zones := map[string]bool{}
		for _, id := range sh.Replicas {
			n := v.byID[id]
			zones[n.Zone] = true
			if !n.Gone && !n.Draining || sh.Moving || !v.quorum(sh) {
				continue
			}
			if slices.ContainsFunc(v.elig, func(e ids.NodeID) bool { return !slices.Contains(sh.Replicas, e) }) {
				t.Fatalf("%v: shard %d keeps a replica on %+v though it could move", c, sh.ShardID, n)
			}
		}
		if c.placed && c.joined == 0 && len(v.zones) >= len(sh.Replicas) && len(zones) < len(sh.Replicas) {
			t.Fatalf("%v: shard %+v shares a zone though %d zones are eligible", c, sh, len(v.zones))
		}
	}
	if !c.snap.Balance || !allEligible(v, c.snap.Shards) || !equalZones(v) {
		return
	}
	if m := counts(v, c.snap.Shards, false); countSpread(m) > 1 {
		t.Fatalf("%v: replica counts spread %d: %v", c, countSpread(m), m)
	}
}

// checkPreferred plans and applies preferred leader changes until a plan is
// empty, checking every plan, then checks the balance of the result.
func checkPreferred(t *testing.T, c healCase, r *rand.Rand) {
	t.Helper()
	v, limit, shards := newHealView(c.snap), 1+r.IntN(5), c.snap.Shards
	for round := 0; ; round++ {
		if round == roundBound(c.snap) {
			t.Fatalf("%v: preferred leaders: no fixpoint after %d rounds", c, round)
		}
		snap := Snapshot{Nodes: c.snap.Nodes, Shards: shards}
		changes := PlanPreferredLeaders(snap, limit)
		if again := PlanPreferredLeaders(shuffled(snap, r), limit); !slices.Equal(again, changes) {
			t.Fatalf("%v: shuffled input gives %+v, not %+v", c, again, changes)
		}
		if len(changes) > limit {
			t.Fatalf("%v: %d changes over the budget %d", c, len(changes), limit)
		}
		for i, ch := range changes {
			j := slices.IndexFunc(shards, func(sh ShardStatus) bool { return sh.ShardID == ch.ShardID })
			if j < 0 || shards[j].Moving || !v.eligible(ch.Node) || slices.Index(shards[j].Replicas, ch.Node) < 1 ||
				(i > 0 && changes[i-1].ShardID >= ch.ShardID) {
				t.Fatalf("%v: bad change %+v in %+v", c, ch, changes)
			}
		}
		if len(changes) == 0 {
			break
		}
		shards = applyPreferred(shards, changes)
	}
	checkLeaderBalance(t, c, v, shards)
}

// checkLeaderBalance asserts the preferred leaders of settled shards: every
// shard that can lead on an eligible node does, no leadership can move to a
// replica two fewer, and counts are within one when every shard has the
// same replica count, all on eligible nodes, with replica counts within one.
func checkLeaderBalance(t *testing.T, c healCase, v healView, shards []ShardStatus) {
	t.Helper()
	lead := counts(v, shards, true)
	for _, sh := range shards {
		if sh.Moving || !slices.ContainsFunc(sh.Replicas, v.eligible) {
			continue
		}
		if !v.eligible(sh.Replicas[0]) {
			t.Fatalf("%v: shard %+v keeps an ineligible preferred leader", c, sh)
		}
		for _, id := range sh.Replicas[1:] {
			if v.eligible(id) && lead[id] <= lead[sh.Replicas[0]]-2 {
				t.Fatalf("%v: shard %+v could move its leadership to %d: %v", c, sh, id, lead)
			}
		}
	}
	sameRF := !slices.ContainsFunc(shards, func(sh ShardStatus) bool { return len(sh.Replicas) != len(shards[0].Replicas) })
	if sameRF && allEligible(v, shards) && countSpread(counts(v, shards, false)) <= 1 && countSpread(lead) > 1 {
		t.Fatalf("%v: preferred counts spread %d: %v", c, countSpread(lead), lead)
	}
}
