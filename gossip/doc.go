// Package gossip owns cluster liveness and node metadata for shardlog.
//
// It wraps hashicorp/memberlist (SWIM over UDP, push/pull state sync over
// TCP, both on the gossip port, 7402 by default). Every node runs one
// [Gossip]; its memberlist node name is the node ID as 16 lower-case hex
// digits, and its [NodeMeta] (client address and zone) travels with every
// alive message, so any node can find any other node's gRPC endpoint.
//
// # States
//
// A member is ALIVE, SUSPECT, DEAD or LEFT:
//
//	ALIVE   --probe fails------------------> SUSPECT
//	SUSPECT --probe answers----------------> ALIVE
//	ALIVE/SUSPECT --suspicion times out----> DEAD
//	ALIVE/SUSPECT --graceful Leave---------> LEFT
//	DEAD/LEFT --restart (new incarnation)--> ALIVE
//
// ALIVE, DEAD and LEFT come from memberlist's EventDelegate. memberlist keeps
// its SUSPECT state private (the State field of the nodes that
// Memberlist.Members returns is never updated in v0.5.x), so this package
// runs its own small probe loop: every probe interval it pings each ALIVE or
// SUSPECT peer with Memberlist.Ping and marks it SUSPECT when no ack arrives
// within the probe timeout, and ALIVE again when one does. SUSPECT is
// therefore this node's direct view and purely advisory; DEAD is the
// cluster's verdict after memberlist's suspicion protocol (indirect probes,
// confirmations) ran its course, and is what the controller acts on.
//
// memberlist also does not tell its event delegate whether a departed node
// left or failed, so [Gossip.Leave] announces the departure itself (a
// leaving flag in the node's gossiped metadata plus a direct message to
// each live peer) before running memberlist's leave; peers that heard
// either mark the node LEFT, the rest DEAD.
//
// memberlist forgets dead nodes after a while; this package does not:
// [Gossip.Members] lists every node ever seen, the forgotten ones as DEAD
// (or LEFT), until the process restarts.
//
// # Healing
//
// A restarted node (same ID, same address) joins with a fresh incarnation;
// the others still hold it as DEAD with an older incarnation, so on the first
// push/pull it refutes that with a higher incarnation and everybody marks it
// ALIVE again. When [Config.Seeds] is set, a rejoin loop calls it every
// [Config.RejoinInterval] and joins the returned addresses whenever this node
// is alone or sees fewer alive members than nodes it knows (excluding nodes
// that left), so a restarted or partitioned node heals without an operator.
//
// # Events
//
// [Gossip.Events] delivers every state or metadata change, in the order this
// node observed them. The channel is buffered; when the consumer falls
// behind, the oldest event is dropped rather than blocking memberlist's
// delegate. Consumers that must not miss a transition should treat events as
// hints and read [Gossip.Members] for the current truth.
//
// # Threads
//
// memberlist calls the delegates with its node lock held; they only take
// Gossip.mu (state table and event channel) or Gossip.metaMu (local
// metadata) and never call back into memberlist. The probe loop and rejoin
// loop are owned by the Gossip and stopped and awaited by [Gossip.Shutdown]
// before memberlist shuts down. Lock order: Gossip.lifeMu (held by Leave,
// UpdateMeta and Shutdown across memberlist calls), then memberlist's node
// lock, then Gossip.mu or Gossip.metaMu, which are never held together nor
// across a memberlist call.
package gossip
