package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"shardlog/ids"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// updateMetaTimeout bounds how long UpdateMeta waits for its broadcast to
// reach one peer.
const updateMetaTimeout = 5 * time.Second

// Gossip is one node's membership in the cluster. Create it with Start;
// all methods are safe for concurrent use.
type Gossip struct {
	cfg    Config
	log    *slog.Logger
	ml     *memberlist.Memberlist
	events chan Event

	metaMu  sync.Mutex
	meta    NodeMeta // local metadata
	leaving bool     // Leave started: gossip the leaving flag

	mu      sync.Mutex
	tbl     *table
	closed  bool // Events is closed; no more events
	left    bool // Leave was called; stop rejoining
	dropped uint64

	lifeMu   sync.Mutex // serializes Leave and Shutdown
	shutdown bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Start binds the gossip port (TCP and UDP), starts memberlist and the
// probe and rejoin loops. The node is alone until Join (or the rejoin loop)
// contacts a peer.
func Start(cfg Config) (*Gossip, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "gossip", "node", nodeName(cfg.NodeID)),
		events: make(chan Event, cfg.EventBuffer),
		meta:   cfg.Meta,
		tbl:    newTable(),
	}
	mc := cfg.memberlistConfig()
	mc.Delegate = delegate{g: g}
	mc.Events = eventDelegate{g: g}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	g.ml = ml
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.probeLoop(ctx, mc.ProbeInterval)
	}()
	if cfg.Seeds != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.rejoinLoop(ctx)
		}()
	}
	g.log.Info("gossip started", "addr", g.Addr())
	return g, nil
}

// Join contacts the given gossip addresses (host:port) and merges state
// with them. It returns how many it reached; the error is non-nil only if
// none answered.
func (g *Gossip) Join(seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, ErrNoSeeds
	}
	if g.isShutdown() {
		return 0, ErrShutdown
	}
	n, err := g.ml.Join(seeds)
	if err != nil {
		return n, fmt.Errorf("gossip: join %v: %w", seeds, err)
	}
	return n, nil
}

// LocalID returns this node's ID.
func (g *Gossip) LocalID() ids.NodeID {
	return g.cfg.NodeID
}

// Addr returns this node's advertised gossip address (host:port), with the
// port the OS chose when Config.BindPort was 0.
func (g *Gossip) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, _ := g.tbl.member(g.cfg.NodeID)
	return m.Addr
}

// Members returns every node this node has ever seen, itself included,
// sorted by ID. Nodes that memberlist has forgotten stay listed as DEAD or
// LEFT.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tbl.members()
}

// Member returns one node's row, and false if it was never seen.
func (g *Gossip) Member(id ids.NodeID) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tbl.member(id)
}

// State returns a node's state, or "" if it was never seen.
func (g *Gossip) State(id ids.NodeID) State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tbl.state(id)
}

// AliveIDs returns the IDs of the members in state ALIVE (not SUSPECT),
// sorted, this node included while it runs.
func (g *Gossip) AliveIDs() []ids.NodeID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tbl.aliveIDs()
}

// Events returns the channel of membership changes. It is buffered
// (Config.EventBuffer); when full, the oldest event is dropped. It is
// closed by Shutdown.
func (g *Gossip) Events() <-chan Event {
	return g.events
}

// UpdateMeta changes this node's metadata and gossips it. The new metadata
// is in effect locally even if the broadcast times out (error returned);
// push/pull spreads it later.
func (g *Gossip) UpdateMeta(m NodeMeta) error {
	if err := checkMetaSize(m); err != nil {
		return err
	}
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.shutdown {
		return ErrShutdown
	}
	g.metaMu.Lock()
	g.meta = m
	g.metaMu.Unlock()
	if err := g.ml.UpdateNode(updateMetaTimeout); err != nil {
		return fmt.Errorf("gossip: update meta: %w", err)
	}
	return nil
}

// Leave announces that this node leaves the cluster on purpose, so peers
// mark it LEFT rather than DEAD, and waits up to timeout (zero: no limit)
// for the announcement to reach a peer. Gossip keeps running until
// Shutdown but stops rejoining.
//
// memberlist does not tell its event delegate whether a node left or
// failed, so Leave first gossips a leaving flag in the node's metadata and
// sends a direct leave message to every live peer, then runs memberlist's
// own leave.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.shutdown {
		return ErrShutdown
	}
	// The leaving flag gets at most half the budget: memberlist's own
	// leave message matters more.
	var deadline, flagDeadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
		flagDeadline = time.Now().Add(timeout / 2)
	}
	g.mu.Lock()
	g.left = true
	peers := g.tbl.probeTargets(g.cfg.NodeID)
	g.mu.Unlock()
	g.metaMu.Lock()
	g.leaving = true
	g.metaMu.Unlock()
	start := time.Now()
	if err := g.ml.UpdateNode(remaining(flagDeadline)); err != nil {
		g.log.Debug("leaving flag broadcast timed out", "err", err)
	}
	flagged := time.Now()
	g.announceLeaving(peers)
	announced := time.Now()
	g.log.Debug("leave announced", "flag", flagged.Sub(start), "direct", announced.Sub(flagged))
	if err := g.ml.Leave(remaining(deadline)); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	g.log.Info("left the cluster")
	return nil
}

// announceLeaving sends the leave message to each peer over TCP, in
// parallel; each send is bounded by memberlist's TCP timeout.
func (g *Gossip) announceLeaving(peers []probeTarget) {
	msg := encodeLeaving(g.cfg.NodeID)
	var wg sync.WaitGroup
	for _, p := range peers {
		host, portStr, err := net.SplitHostPort(p.addr)
		if err != nil {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		node := &memberlist.Node{Name: nodeName(p.id), Addr: net.ParseIP(host), Port: uint16(port)}
		wg.Go(func() {
			if err := g.ml.SendReliable(node, msg); err != nil {
				g.log.Debug("leave announcement failed", "peer", node.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// remaining returns the time left until deadline, at least 1 ms, or zero
// (no limit) for a zero deadline.
func remaining(deadline time.Time) time.Duration {
	if deadline.IsZero() {
		return 0
	}
	return max(time.Until(deadline), time.Millisecond)
}

// Shutdown stops the loops and memberlist without announcing anything:
// peers will see this node SUSPECT, then DEAD. It closes the Events
// channel. Calling it again returns nil.
func (g *Gossip) Shutdown() error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.shutdown {
		return nil
	}
	g.shutdown = true
	g.cancel()
	g.wg.Wait()
	err := g.ml.Shutdown()
	g.mu.Lock()
	g.closed = true
	close(g.events)
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	g.log.Info("gossip stopped")
	return nil
}

func (g *Gossip) isShutdown() bool {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	return g.shutdown
}

// localMeta returns the encoded local metadata for memberlist. The size
// was checked (with the leaving flag set) when the metadata was accepted.
func (g *Gossip) localMeta() []byte {
	g.metaMu.Lock()
	m, leaving := g.meta, g.leaving
	g.metaMu.Unlock()
	b, err := encodeMeta(m, leaving)
	if err != nil {
		g.log.Error("encode local meta", "err", err)
		return nil
	}
	return b
}

// observeNode records a memberlist delegate callback: joined (alive) or
// departed (dead or left). memberlist holds its node lock, so n may be read
// here but not kept.
func (g *Gossip) observeNode(n *memberlist.Node, alive bool) {
	id, ok := parseNodeName(n.Name)
	if !ok {
		g.log.Debug("ignoring member with foreign name", "name", n.Name)
		return
	}
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		g.log.Warn("bad node meta", "peer", n.Name, "err", err)
	}
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var ev Event
	if alive {
		ev, ok = g.tbl.joined(id, addr, meta, leaving, now)
	} else {
		ev, ok = g.tbl.departed(id, addr, meta, leaving, now)
	}
	if ok {
		g.emitLocked(ev)
	}
}

// observeLeaving records a peer's direct "leaving" message.
func (g *Gossip) observeLeaving(id ids.NodeID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tbl.markLeaving(id)
}

// emitLocked publishes ev, dropping the oldest queued event when the
// channel is full. g.mu must be held: it orders events and makes the
// drop-then-send pair atomic with respect to other senders.
func (g *Gossip) emitLocked(ev Event) {
	if g.closed {
		return
	}
	g.log.Debug("member changed", "peer", nodeName(ev.NodeID), "state", ev.State)
	for {
		select {
		case g.events <- ev:
			return
		default:
		}
		select {
		case <-g.events:
			g.dropped++
			g.log.Debug("event buffer full, dropped oldest event", "dropped_total", g.dropped)
		default:
		}
	}
}

// parseNodeName converts a memberlist node name back to a node ID.
func parseNodeName(name string) (ids.NodeID, bool) {
	if len(name) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(name, 16, 64)
	if err != nil || id == 0 {
		return 0, false
	}
	return ids.NodeID(id), true
}
