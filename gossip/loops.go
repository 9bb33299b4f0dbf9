package gossip

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"
)

// probeLoop pings every ALIVE or SUSPECT peer once per interval to
// maintain the SUSPECT overlay (see the package doc). The pings of one
// round run in parallel and each lasts at most memberlist's probe timeout,
// which is below the interval.
func (g *Gossip) probeLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.probeRound(ctx)
	}
}

// probeRound pings each peer once and records the outcomes.
func (g *Gossip) probeRound(ctx context.Context) {
	g.mu.Lock()
	targets := g.tbl.probeTargets(g.cfg.NodeID)
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range targets {
		addr, err := udpAddr(p.addr)
		if err != nil {
			g.log.Debug("cannot probe peer", "peer", nodeName(p.id), "addr", p.addr, "err", err)
			continue
		}
		wg.Go(func() {
			_, err := g.ml.Ping(nodeName(p.id), addr)
			if ctx.Err() != nil {
				return
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if ev, ok := g.tbl.probed(p.id, p.gen, err == nil, time.Now()); ok {
				g.emitLocked(ev)
			}
		})
	}
	wg.Wait()
}

// udpAddr parses a host:port with a literal IP.
func udpAddr(hostport string) (*net.UDPAddr, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, err
	}
	return &net.UDPAddr{IP: net.ParseIP(host), Port: int(port)}, nil
}

// rejoinLoop calls Config.Seeds every RejoinInterval and joins through the
// seeds while this node is alone or misses some known member, so a
// restarted or partitioned node heals on its own. It stops after Leave.
func (g *Gossip) rejoinLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		need := !g.left && g.tbl.needsRejoin()
		g.mu.Unlock()
		if !need {
			continue
		}
		seeds := g.otherSeeds(g.cfg.Seeds())
		if len(seeds) == 0 {
			continue
		}
		n, err := g.ml.Join(seeds)
		if err != nil {
			g.log.Debug("rejoin failed", "seeds", seeds, "err", err)
			continue
		}
		g.log.Debug("rejoined", "seeds", seeds, "reached", n)
	}
}

// otherSeeds drops this node's own address from seeds: joining oneself is
// a wasted push/pull.
func (g *Gossip) otherSeeds(seeds []string) []string {
	self := g.Addr()
	out := make([]string, 0, len(seeds))
	for _, s := range seeds {
		if s != "" && s != self {
			out = append(out, s)
		}
	}
	return out
}
