package gossip

import "github.com/hashicorp/memberlist"

// delegate serves the local metadata to memberlist and receives leave
// announcements. shardlog keeps no other state in gossip, so the
// broadcast and push/pull hooks are empty.
type delegate struct {
	g *Gossip
}

var _ memberlist.Delegate = delegate{}

// NodeMeta implements memberlist.Delegate. The size was checked when the
// metadata was set.
func (d delegate) NodeMeta(limit int) []byte {
	return d.g.localMeta()
}

// NotifyMsg implements memberlist.Delegate. The only user message is a
// peer's announcement that it is about to leave.
func (d delegate) NotifyMsg(b []byte) {
	if id, ok := decodeLeaving(b); ok {
		d.g.observeLeaving(id)
	}
}

// GetBroadcasts implements memberlist.Delegate; nothing to broadcast.
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; no extra push/pull state.
func (delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate; no extra push/pull
// state.
func (delegate) MergeRemoteState(buf []byte, join bool) {}

// eventDelegate feeds memberlist's join/leave/update callbacks into the
// membership table. memberlist calls it with its node lock held.
type eventDelegate struct {
	g *Gossip
}

var _ memberlist.EventDelegate = eventDelegate{}

// NotifyJoin implements memberlist.EventDelegate: a new node, or a DEAD or
// LEFT one that came back.
func (d eventDelegate) NotifyJoin(n *memberlist.Node) {
	d.g.observeNode(n, true)
}

// NotifyLeave implements memberlist.EventDelegate. memberlist passes the
// embedded Node, whose State field it never updates, so LEFT and DEAD are
// told apart by the node's own announcement (see Gossip.Leave).
func (d eventDelegate) NotifyLeave(n *memberlist.Node) {
	d.g.observeNode(n, false)
}

// NotifyUpdate implements memberlist.EventDelegate: new metadata in an
// alive message with a newer incarnation, so the node is alive.
func (d eventDelegate) NotifyUpdate(n *memberlist.Node) {
	d.g.observeNode(n, true)
}
