package gossip

import (
	"cmp"
	"shardlog/ids"
	"slices"
	"time"
)

// State is a member's liveness as seen by this node.
type State string

// Member states.
const (
	// StateAlive: memberlist considers the node alive and it answers probes.
	StateAlive State = "ALIVE"
	// StateSuspect: memberlist still lists the node, but it did not answer
	// this node's last probe.
	StateSuspect State = "SUSPECT"
	// StateDead: the cluster declared the node failed.
	StateDead State = "DEAD"
	// StateLeft: the node left gracefully (Gossip.Leave).
	StateLeft State = "LEFT"
)

// Member is one node as seen by this node.
type Member struct {
	// NodeID is the node's ID.
	NodeID ids.NodeID
	// Addr is the node's gossip address (host:port).
	Addr string
	// State is the node's liveness.
	State State
	// Meta is the node's last known metadata.
	Meta NodeMeta
	// Since is when this node observed the current State.
	Since time.Time
}

// Event reports a change of a member's State or Meta.
type Event struct {
	// NodeID is the node that changed.
	NodeID ids.NodeID
	// State is its new (or unchanged) state.
	State State
	// Meta is its metadata at the time of the change.
	Meta NodeMeta
}

// entry is one row of the table.
type entry struct {
	member Member
	// gen counts changes reported by memberlist's delegates. A probe result
	// carries the gen it was started under and is dropped if the row moved
	// on meanwhile, so a slow ping cannot undo a newer DEAD or rejoin.
	gen uint64
	// leaving is set once the node announced it is leaving on purpose.
	leaving bool
}

// table is the membership map: every node ever seen. It is not safe for
// concurrent use; Gossip guards it with its mutex. It does no I/O and reads
// no clock: callers pass now.
type table struct {
	nodes map[ids.NodeID]*entry
}

func newTable() *table {
	return &table{nodes: make(map[ids.NodeID]*entry)}
}

// joined records that memberlist holds the node as alive (a join, a
// return from DEAD or LEFT, or newer metadata). leaving is the flag from
// its metadata; a restarted node gossips it cleared.
func (t *table) joined(id ids.NodeID, addr string, meta NodeMeta, leaving bool, now time.Time) (Event, bool) {
	e := t.row(id, now)
	e.leaving = leaving
	return t.set(e, addr, StateAlive, meta, now)
}

// departed records that memberlist declared the node dead. It is LEFT if
// the node announced its departure (leaving flag in its metadata, or a
// direct leave message), else DEAD.
func (t *table) departed(id ids.NodeID, addr string, meta NodeMeta, leaving bool, now time.Time) (Event, bool) {
	e := t.row(id, now)
	st := StateDead
	if leaving || e.leaving {
		st = StateLeft
	}
	return t.set(e, addr, st, meta, now)
}

// markLeaving records a node's direct announcement that it is leaving, so
// its coming departure reads as LEFT.
func (t *table) markLeaving(id ids.NodeID) {
	if e, ok := t.nodes[id]; ok {
		e.leaving = true
	}
}

// row returns the row for id, creating a fresh one.
func (t *table) row(id ids.NodeID, now time.Time) *entry {
	e, ok := t.nodes[id]
	if !ok {
		e = &entry{member: Member{NodeID: id, Since: now}}
		t.nodes[id] = e
	}
	return e
}

// set applies a memberlist-reported state and returns the event to
// publish, if the state or metadata changed (a new row always does).
func (t *table) set(e *entry, addr string, st State, meta NodeMeta, now time.Time) (Event, bool) {
	e.gen++
	e.member.Addr = addr
	fresh := e.member.State == ""
	changed := fresh || e.member.State != st || e.member.Meta != meta
	if e.member.State != st {
		e.member.Since = now
	}
	e.member.State = st
	e.member.Meta = meta
	if !changed {
		return Event{}, false
	}
	return Event{NodeID: e.member.NodeID, State: st, Meta: meta}, true
}

// probeTarget is a peer the probe loop should ping.
type probeTarget struct {
	id   ids.NodeID
	addr string
	gen  uint64
}

// probeTargets lists the ALIVE and SUSPECT members other than self, sorted
// by ID.
func (t *table) probeTargets(self ids.NodeID) []probeTarget {
	var out []probeTarget
	for id, e := range t.nodes {
		if id == self {
			continue
		}
		if e.member.State == StateAlive || e.member.State == StateSuspect {
			out = append(out, probeTarget{id: id, addr: e.member.Addr, gen: e.gen})
		}
	}
	slices.SortFunc(out, func(a, b probeTarget) int { return cmp.Compare(a.id, b.id) })
	return out
}

// probed records the outcome of a probe started at generation gen: a
// missed ack turns ALIVE into SUSPECT and an ack turns SUSPECT into ALIVE.
// DEAD and LEFT belong to memberlist and are never changed here.
func (t *table) probed(id ids.NodeID, gen uint64, acked bool, now time.Time) (Event, bool) {
	e, ok := t.nodes[id]
	if !ok || e.gen != gen {
		return Event{}, false
	}
	var next State
	switch {
	case acked && e.member.State == StateSuspect:
		next = StateAlive
	case !acked && e.member.State == StateAlive:
		next = StateSuspect
	default:
		return Event{}, false
	}
	e.member.State = next
	e.member.Since = now
	return Event{NodeID: id, State: next, Meta: e.member.Meta}, true
}

// state returns a node's state, or "" if it was never seen.
func (t *table) state(id ids.NodeID) State {
	if e, ok := t.nodes[id]; ok {
		return e.member.State
	}
	return ""
}

// member returns a copy of one row.
func (t *table) member(id ids.NodeID) (Member, bool) {
	e, ok := t.nodes[id]
	if !ok {
		return Member{}, false
	}
	return e.member, true
}

// members returns every row sorted by node ID.
func (t *table) members() []Member {
	out := make([]Member, 0, len(t.nodes))
	for _, e := range t.nodes {
		out = append(out, e.member)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// aliveIDs returns the IDs of ALIVE members, sorted.
func (t *table) aliveIDs() []ids.NodeID {
	var out []ids.NodeID
	for id, e := range t.nodes {
		if e.member.State == StateAlive {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// needsRejoin reports whether this node should rejoin through its seeds:
// when it sees no peer alive, or fewer alive (or suspect) members than
// nodes it knows that did not leave.
func (t *table) needsRejoin() bool {
	live, known := 0, 0
	for _, e := range t.nodes {
		switch e.member.State {
		case StateAlive, StateSuspect:
			live++
			known++
		case StateDead:
			known++
		}
	}
	return live <= 1 || live < known
}
