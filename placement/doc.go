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
package placement
