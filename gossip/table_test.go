package gossip

import (
	"shardlog/ids"
	"slices"
	"testing"
	"time"
)

// step is one input to the table in a scenario.
type step struct {
	kind    string // "join", "depart", "leaving", "probe-ok", "probe-miss", "stale-probe-miss"
	id      ids.NodeID
	meta    NodeMeta
	leaving bool // the leaving flag in the gossiped metadata
}

func TestTableTransitions(t *testing.T) {
	m1 := NodeMeta{ClientAddr: "a:1", Zone: "z1"}
	m2 := NodeMeta{ClientAddr: "a:2", Zone: "z1"}
	tests := []struct {
		name       string
		steps      []step
		wantState  State
		wantEvents []State
	}{
		{
			name:       "join is alive",
			steps:      []step{{kind: "join", id: 7, meta: m1}},
			wantState:  StateAlive,
			wantEvents: []State{StateAlive},
		},
		{
			name:       "duplicate join publishes once",
			steps:      []step{{kind: "join", id: 7, meta: m1}, {kind: "join", id: 7, meta: m1}},
			wantState:  StateAlive,
			wantEvents: []State{StateAlive},
		},
		{
			name:       "meta change publishes alive again",
			steps:      []step{{kind: "join", id: 7, meta: m1}, {kind: "join", id: 7, meta: m2}},
			wantState:  StateAlive,
			wantEvents: []State{StateAlive, StateAlive},
		},
		{
			name:       "missed probe is suspect, ack is alive",
			steps:      []step{{kind: "join", id: 7}, {kind: "probe-miss", id: 7}, {kind: "probe-miss", id: 7}, {kind: "probe-ok", id: 7}},
			wantState:  StateAlive,
			wantEvents: []State{StateAlive, StateSuspect, StateAlive},
		},
		{
			name:       "failure without announcement is dead",
			steps:      []step{{kind: "join", id: 7}, {kind: "probe-miss", id: 7}, {kind: "depart", id: 7}},
			wantState:  StateDead,
			wantEvents: []State{StateAlive, StateSuspect, StateDead},
		},
		{
			name:       "leaving flag in meta makes it left",
			steps:      []step{{kind: "join", id: 7}, {kind: "join", id: 7, leaving: true}, {kind: "depart", id: 7, leaving: true}},
			wantState:  StateLeft,
			wantEvents: []State{StateAlive, StateLeft},
		},
		{
			name:       "direct leaving message makes it left",
			steps:      []step{{kind: "join", id: 7}, {kind: "leaving", id: 7}, {kind: "depart", id: 7}},
			wantState:  StateLeft,
			wantEvents: []State{StateAlive, StateLeft},
		},
		{
			name:       "probes never touch dead",
			steps:      []step{{kind: "join", id: 7}, {kind: "depart", id: 7}, {kind: "probe-ok", id: 7}, {kind: "probe-miss", id: 7}},
			wantState:  StateDead,
			wantEvents: []State{StateAlive, StateDead},
		},
		{
			name:       "restart after dead is alive",
			steps:      []step{{kind: "join", id: 7}, {kind: "depart", id: 7}, {kind: "join", id: 7}},
			wantState:  StateAlive,
			wantEvents: []State{StateAlive, StateDead, StateAlive},
		},
		{
			name:       "restart after leave clears the leaving mark",
			steps:      []step{{kind: "join", id: 7}, {kind: "leaving", id: 7}, {kind: "depart", id: 7}, {kind: "join", id: 7}, {kind: "depart", id: 7}},
			wantState:  StateDead,
			wantEvents: []State{StateAlive, StateLeft, StateAlive, StateDead},
		},
		{
			name:       "probe started before a rejoin is dropped",
			steps:      []step{{kind: "join", id: 7}, {kind: "stale-probe-miss", id: 7}},
			wantState:  StateAlive,
			wantEvents: []State{StateAlive},
		},
		{
			name:       "probe of unknown node is ignored",
			steps:      []step{{kind: "probe-miss", id: 7}},
			wantState:  "",
			wantEvents: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newTable()
			now := time.Unix(1000, 0)
			var got []State
			for _, s := range tt.steps {
				now = now.Add(time.Second)
				var ev Event
				var ok bool
				switch s.kind {
				case "join":
					ev, ok = tbl.joined(s.id, "127.0.0.1:1", s.meta, s.leaving, now)
				case "depart":
					ev, ok = tbl.departed(s.id, "127.0.0.1:1", s.meta, s.leaving, now)
				case "leaving":
					tbl.markLeaving(s.id)
				case "probe-ok", "probe-miss", "stale-probe-miss":
					var gen uint64
					if e, found := tbl.nodes[s.id]; found {
						gen = e.gen
					}
					if s.kind == "stale-probe-miss" {
						gen--
					}
					ev, ok = tbl.probed(s.id, gen, s.kind == "probe-ok", now)
				default:
					t.Fatalf("unknown step %q", s.kind)
				}
				if ok {
					if ev.NodeID != s.id {
						t.Fatalf("event for node %d, want %d", ev.NodeID, s.id)
					}
					got = append(got, ev.State)
				}
			}
			if st := tbl.state(7); st != tt.wantState {
				t.Errorf("state = %q, want %q", st, tt.wantState)
			}
			if !slices.Equal(got, tt.wantEvents) {
				t.Errorf("events = %v, want %v", got, tt.wantEvents)
			}
		})
	}
}

func TestTableSinceChangesOnlyWithState(t *testing.T) {
	tbl := newTable()
	t0 := time.Unix(1000, 0)
	tbl.joined(1, "h:1", NodeMeta{}, false, t0)
	tbl.joined(1, "h:1", NodeMeta{Zone: "z"}, false, t0.Add(time.Second))
	if m, _ := tbl.member(1); !m.Since.Equal(t0) {
		t.Errorf("Since = %v after a meta change, want %v", m.Since, t0)
	}
	tbl.departed(1, "h:1", NodeMeta{}, false, t0.Add(2*time.Second))
	if m, _ := tbl.member(1); !m.Since.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("Since = %v after death, want %v", m.Since, t0.Add(2*time.Second))
	}
}

func TestTableListsSortedAndRejoinRule(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name       string
		alive      []ids.NodeID
		dead       []ids.NodeID
		left       []ids.NodeID
		wantRejoin bool
	}{
		{name: "alone", alive: []ids.NodeID{1}, wantRejoin: true},
		{name: "all alive", alive: []ids.NodeID{1, 2, 3}, wantRejoin: false},
		{name: "one dead", alive: []ids.NodeID{1, 2}, dead: []ids.NodeID{3}, wantRejoin: true},
		{name: "one left", alive: []ids.NodeID{1, 2}, left: []ids.NodeID{3}, wantRejoin: false},
		{name: "alone after others left", alive: []ids.NodeID{1}, left: []ids.NodeID{2, 3}, wantRejoin: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newTable()
			for _, id := range slices.Backward(tt.alive) {
				tbl.joined(id, "h:1", NodeMeta{}, false, now)
			}
			for _, id := range tt.dead {
				tbl.joined(id, "h:1", NodeMeta{}, false, now)
				tbl.departed(id, "h:1", NodeMeta{}, false, now)
			}
			for _, id := range tt.left {
				tbl.joined(id, "h:1", NodeMeta{}, true, now)
				tbl.departed(id, "h:1", NodeMeta{}, true, now)
			}
			if got := tbl.needsRejoin(); got != tt.wantRejoin {
				t.Errorf("needsRejoin = %v, want %v", got, tt.wantRejoin)
			}
			if got := tbl.aliveIDs(); !slices.Equal(got, tt.alive) {
				t.Errorf("aliveIDs = %v, want %v", got, tt.alive)
			}
			ms := tbl.members()
			if len(ms) != len(tt.alive)+len(tt.dead)+len(tt.left) {
				t.Fatalf("members = %d rows", len(ms))
			}
			if !slices.IsSortedFunc(ms, func(a, b Member) int { return int(a.NodeID) - int(b.NodeID) }) {
				t.Errorf("members not sorted: %+v", ms)
			}
			targets := tbl.probeTargets(1)
			if len(targets) != len(tt.alive)-1 {
				t.Errorf("probe targets = %+v, want the %d other alive nodes", targets, len(tt.alive)-1)
			}
		})
	}
}
