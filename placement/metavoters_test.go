package placement

import (
	"math/rand/v2"
	"shardlog/ids"
	"slices"
	"testing"
)

func TestPlacementPlanMetaVoters(t *testing.T) {
	v := func(id uint64, zone string, voter, usable bool) VoterStatus {
		return VoterStatus{ID: idOf(id), Zone: zone, Voter: voter, Usable: usable}
	}
	tests := []struct {
		name  string
		nodes []VoterStatus
		want  int
		plan  MetaVoterChange
	}{
		{"healthy", []VoterStatus{v(1, "", true, true), v(2, "", true, true), v(3, "", true, true), v(4, "", false, true)}, 3, MetaVoterChange{}},
		{"dead voter, spare: promote first", []VoterStatus{v(1, "", true, true), v(2, "", true, false), v(3, "", true, true), v(4, "", false, true)}, 3, MetaVoterChange{Add: idOf(4)}},
		{"dead voter replaced: remove it", []VoterStatus{v(1, "", true, true), v(2, "", true, false), v(3, "", true, true), v(4, "", true, true)}, 3, MetaVoterChange{Remove: idOf(2)}},
		{"dead voter, no spare: keep it", []VoterStatus{v(1, "", true, true), v(2, "", true, false), v(3, "", true, true)}, 3, MetaVoterChange{}},
		{"spare not usable", []VoterStatus{v(1, "", true, true), v(2, "", true, false), v(3, "", true, true), v(4, "", false, false)}, 3, MetaVoterChange{}},
		{"too few after a removal", []VoterStatus{v(1, "", true, true), v(3, "", true, true), v(4, "", false, true), v(5, "", false, true)}, 3, MetaVoterChange{Add: idOf(4)}},
		{"prefer a zone without a voter", []VoterStatus{v(1, "a", true, true), v(2, "a", true, false), v(3, "b", true, true), v(4, "a", false, true), v(5, "c", false, true)}, 3, MetaVoterChange{Add: idOf(5)}},
		{"a live voter is never removed to spread zones", []VoterStatus{v(1, "a", true, true), v(2, "a", true, true), v(3, "b", true, true), v(5, "c", false, true)}, 3, MetaVoterChange{}},
		{"nor when there are more than wanted", []VoterStatus{v(1, "a", true, true), v(2, "a", true, true), v(3, "b", true, true), v(5, "c", true, true)}, 3, MetaVoterChange{}},
		{"one voter wanted", []VoterStatus{v(1, "", true, false), v(2, "", false, true)}, 1, MetaVoterChange{Add: idOf(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlanMetaVoters(tt.nodes, tt.want); got != tt.plan {
				t.Fatalf("plan %+v, want %+v", got, tt.plan)
			}
			rev := slices.Clone(tt.nodes)
			slices.Reverse(rev)
			if got := PlanMetaVoters(rev, tt.want); got != tt.plan {
				t.Fatalf("reversed input: plan %+v, want %+v", got, tt.plan)
			}
		})
	}
}

// TestPlacementPlanMetaVotersConverges applies plans to random clusters until none
// is left: the usable voters never drop, and the end has min(want, usable nodes)
// usable voters (at least), and a usable voter is never removed.
func TestPlacementPlanMetaVotersConverges(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for c := range 400 {
		nodes := make([]VoterStatus, 1+r.IntN(8))
		for i := range nodes {
			nodes[i] = VoterStatus{ID: idOf(uint64(i + 1)), Zone: string(rune('a' + r.IntN(3))), Voter: r.IntN(2) == 0, Usable: r.IntN(4) != 0}
		}
		want := 1 + r.IntN(5)
		countUsable := func() (voters, all int) {
			for _, n := range nodes {
				if n.Usable {
					all++
					if n.Voter {
						voters++
					}
				}
			}
			return voters, all
		}
		steps := 0
		for ; steps < 40; steps++ {
			before, _ := countUsable()
			p := PlanMetaVoters(nodes, want)
			if p == (MetaVoterChange{}) {
				break
			}
			for i := range nodes {
				if nodes[i].ID == p.Remove && nodes[i].Usable {
					t.Fatalf("case %d: plan removes usable voter %d", c, p.Remove)
				}
				if nodes[i].ID == p.Add {
					nodes[i].Voter = true
				}
				if nodes[i].ID == p.Remove {
					nodes[i].Voter = false
				}
			}
			if after, _ := countUsable(); after < before && after < want {
				t.Fatalf("case %d: usable voters dropped from %d to %d below %d", c, before, after, want)
			}
		}
		if steps == 40 {
			t.Fatalf("case %d: no fixpoint after 40 steps: %+v", c, nodes)
		}
		voters, all := countUsable()
		if voters != min(want, all) && voters < want {
			t.Fatalf("case %d: %d usable voters, want %d (of %d usable nodes): %+v", c, voters, min(want, all), all, nodes)
		}
	}
}

func idOf(i uint64) ids.NodeID { return ids.NodeID(i) }
