package placement

import (
	"cmp"
	"slices"

	"shardlog/ids"
)

// VoterStatus is one node as the meta group's repair sees it.
type VoterStatus struct {
	ID   ids.NodeID
	Zone string
	// Voter: the node votes in the meta group.
	Voter bool
	// Usable: for a voter, it is neither gone for good nor draining (a voter
	// that is down for a while still counts: replacing it would churn the
	// group at every short failure); for a non-voter, it is also alive, so it
	// may be promoted.
	Usable bool
}

// MetaVoterChange is one step of the meta group's repair: promote Add, or take
// Remove out of the group. At most one of them is set.
type MetaVoterChange struct {
	Add, Remove ids.NodeID
}

// PlanMetaVoters returns the next step towards want usable voters. One step at a
// time, and always adding before removing, so the group never has fewer usable
// voters than it had:
//
//   - fewer than want usable voters: promote a usable non-voter, from a zone with
//     no usable voter if there is one (then the zone with fewest, then lowest ID);
//   - a voter that is not usable: remove it once want usable voters exist (a
//     replacement first; without one it stays, as removing it would not make
//     the group more tolerant).
//
// A usable voter is never removed, not even to spread voters over zones or when
// there are more than want: the meta group's replica ID of a node is its node ID,
// and a removed replica ID can never rejoin, so a live node taken out of the
// group would lose its copy of the meta state. The zero MetaVoterChange means
// nothing to do.
func PlanMetaVoters(nodes []VoterStatus, want int) MetaVoterChange {
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b VoterStatus) int { return cmp.Compare(a.ID, b.ID) })
	perZone := map[string]int{}
	usable := 0
	var unusable []VoterStatus
	for _, n := range nodes {
		switch {
		case n.Voter && n.Usable:
			usable++
			perZone[n.Zone]++
		case n.Voter:
			unusable = append(unusable, n)
		}
	}
	cand := pickCandidate(nodes, perZone)
	switch {
	case usable < want && cand != 0:
		return MetaVoterChange{Add: cand}
	case len(unusable) > 0 && usable >= want:
		return MetaVoterChange{Remove: unusable[0].ID}
	}
	return MetaVoterChange{}
}

// pickCandidate returns the usable non-voter to promote: from the zone with the
// fewest usable voters, then the lowest ID.
func pickCandidate(nodes []VoterStatus, perZone map[string]int) ids.NodeID {
	var best *VoterStatus
	for i := range nodes {
		n := &nodes[i]
		if n.Voter || !n.Usable {
			continue
		}
		if best == nil || perZone[n.Zone] < perZone[best.Zone] {
			best = n
		}
	}
	if best == nil {
		return 0
	}
	return best.ID
}
