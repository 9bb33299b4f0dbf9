// Package placement holds the pure, deterministic decisions about where shard
// replicas live.
//
// Everything here is a function of its arguments: no I/O, no clock, no
// goroutines and no dependence on map iteration order, so the meta state
// machine can call it inside Raft apply and every replica reaches the same
// answer. Callers pass a snapshot of the cluster by value and get a plan back;
// turning the plan into Raft proposals is the caller's job.
//
// PlaceShards chooses the replicas of new shards at topic creation. It fills
// one replica slot at a time:
//
//   - Zones: a shard takes at most one replica per zone while the candidate
//     nodes span at least rf zones; otherwise its replicas are spread over the
//     zones as evenly as the zone sizes allow (water filling). The empty zone
//     name is a zone like any other, so a cluster without zones is one zone.
//   - Among the zones allowed for the next slot, the zone with the fewest
//     replicas per node wins, then the node in it with the fewest replicas,
//     then the most preferred leaderships (nodes with few are kept free to
//     lead), then the lowest node ID.
//   - The preferred leader is the node with the fewest preferred leaderships
//     (then most replicas, then lowest ID) among the chosen nodes and the
//     nodes that could replace one of them without changing the placement's
//     shape (same replica count, same zone or an equivalent one). It comes
//     first in the list; the others follow in ascending node ID.
//
// Replica counts: starting from a balanced cluster (counts differing by at
// most one, as PlaceShards leaves them) with zones of equal size, they stay
// within one of each other. With zones of unequal size the zone rule can make
// that impossible, and nodes are balanced within each zone instead.
//
// Preferred-leader counts stay within one of each other when every existing
// shard was placed with the same replication factor. Mixing replication
// factors can reach a state where no choice balances both (the nodes with the
// fewest replicas may hold the most leaderships); replicas win, and leader
// counts then differ by at most two in the property tests. Leadership is cheap
// to move later (a Raft leader transfer), replicas are not.
//
// PlanLeaderTransfers moves leadership back to the preferred leaders. A node
// passes a LeaderView (the shards it leads, every node's liveness and how
// long it has been alive, the grace period) and gets the transfers to
// request: one per led shard whose preferred replica is on another node that
// has been alive for at least the grace period.
//
// PlanMoves is the planner of self-healing and balance. The controller on the
// meta leader passes a Snapshot (nodes with their zone and status, shards
// with their replicas, a move budget) and starts the PlannedMoves it gets
// back; a move adds a replica on To and then removes the one on From. Rules:
//
//   - Eligible target: Alive, not Gone, not Draining, and not already
//     holding a replica of the shard. Nothing else ever receives a replica.
//   - Quorum: a shard changes membership only while a majority of its
//     replicas is on alive nodes (draining ones count); others are skipped
//     and reported by the caller as unavailable. Moving shards are skipped,
//     and a plan has at most one move per shard.
//   - Priority: repair (replicas on Gone nodes) first, then drain (replicas
//     on Draining nodes that are not Gone), then balance, each in ascending
//     shard ID, cut to the budget. A shard without an eligible target stays
//     under-replicated until one appears.
//   - Target: zones first: the target's zone holds the fewest of the shard's
//     remaining replicas, which is none whenever the eligible nodes and the
//     remaining replicas span as many zones as the shard has replicas. Then
//     the fewest replicas (moves already planned count), then lowest ID.
//   - Balance (when enabled, with no repair or drain move possible and no
//     shard Moving): while two eligible nodes' replica counts differ by two
//     or more, move a replica between nodes two apart (most to least loaded
//     first), or, when the zone rule forbids all such moves, between nodes
//     one apart towards a less loaded zone. The zone rule is kept: the new
//     zone must be free of the shard's other replicas when zones allow, and
//     never fuller than the old one. With zones of equal size counts end
//     within one in the property tests (observed, not proven); with unequal
//     zones the zone rule can prevent that, and counts are as even as it
//     allows.
//
// Applying a plan (To takes From's slot) and planning again reaches a plan
// with no moves, and a balanced snapshot gives none at all. Replicas that are
// badly placed across zones already (a zone added later) are not moved for
// that reason alone.
//
// PlanPreferredLeaders spreads preferred leaderships (Replicas[0]) evenly
// over the eligible nodes by reordering replica lists: the proposed node, a
// replica of the shard, moves to the front and the others keep their
// relative order. A shard led by a node that is not eligible goes first to
// its least loaded eligible replica; then leaderships are handed down chains
// of shards from a node to one with two fewer, so counts end as even as the
// replica lists allow (within one when all shards have the same replica
// count on eligible nodes and replica counts are within one). Long chains
// are applied a few steps per call when max is small; replanning after
// applying converges and then gives no changes.
package placement
