package client

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"shardlog/proto/shardlogv1"
)

// Leader routing: produce and fetch calls of a shard go straight to the node that leads
// it, when the client knows which one that is, instead of through the current address
// (which forwards, costing the cluster an extra hop). The cache is only a hint: every
// node still forwards, so a stale entry costs a hop or one failed call, never correctness.
const (
	// refreshInterval rate-limits DescribeTopic refreshes of one topic's leaders.
	refreshInterval = 500 * time.Millisecond
	// refreshTimeout bounds one refresh.
	refreshTimeout = 5 * time.Second
	// avoidFor is how long calls skip a leader address after a call on it failed with
	// Unavailable or DeadlineExceeded; they use the current address meanwhile.
	avoidFor = 2 * time.Second
)

// leaderEntry is one shard's cached leader.
type leaderEntry struct {
	node uint64 // 0: unknown
	addr string
}

// topicRoutes caches the leaders of one topic's shards. Producers and consumers of the
// same topic on one Client share it.
type topicRoutes struct {
	c     *Client
	topic string

	mu         sync.Mutex
	leaders    []leaderEntry     // per shard index
	noLeader   []bool            // per shard index: the last DescribeTopic named no leader
	nodes      map[uint64]string // node ID -> client address
	last       time.Time         // start of the last refresh
	refreshing bool              // a refresh goroutine runs
	pending    bool              // another refresh was asked for while one ran
}

// callTarget is the connection a shard call goes to.
type callTarget struct {
	cc     *grpc.ClientConn
	leader bool   // cc is the cached leader's connection
	node   uint64 // the cached leader, when leader
	addr   string // the cached leader's address, when leader
	idx    int    // index into Client.conns, when !leader
}

// routesFor returns the topic's leader cache, creating it empty.
func (c *Client) routesFor(topic string) *topicRoutes {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.routes[topic]
	if !ok {
		r = &topicRoutes{c: c, topic: topic, nodes: make(map[uint64]string)}
		c.routes[topic] = r
	}
	return r
}

// poolConn returns the connection to addr, dialing it lazily with the client's dial
// options. It returns nil once the client is closed or when addr cannot be dialed.
func (c *Client) poolConn(addr string) *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if until, ok := c.avoid[addr]; ok {
		if time.Now().Before(until) {
			return nil
		}
		delete(c.avoid, addr)
	}
	if cc, ok := c.pool[addr]; ok {
		return cc
	}
	cc, err := grpc.NewClient(addr, c.dopts...)
	if err != nil {
		c.log.Warn("client: dial leader", "addr", addr, "err", err)
		c.avoid[addr] = time.Now().Add(avoidFor)
		return nil
	}
	cc.Connect()
	c.pool[addr] = cc
	return cc
}

// avoidAddr makes calls skip addr for avoidFor, and moves the current address on when
// addr is it.
func (c *Client) avoidAddr(addr string, cc *grpc.ClientConn) {
	c.mu.Lock()
	if !c.closed {
		c.avoid[addr] = time.Now().Add(avoidFor)
	}
	c.mu.Unlock()
	if i := slices.Index(c.conns, cc); i >= 0 {
		c.failover(i)
	}
}

// spawn runs f in the background until Close; it reports false after Close.
func (c *Client) spawn(f func(ctx context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.bgWG.Go(func() { f(c.bg) })
	return true
}

// update replaces the cache with the leaders named by info (a DescribeTopic answer).
// It reports whether some shard's leader is unknown.
func (r *topicRoutes) update(info *shardlogv1.TopicInfo) (missing bool) {
	shards := info.GetShards()
	leaders := make([]leaderEntry, len(shards))
	noLeader := make([]bool, len(shards))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, si := range shards {
		for _, rep := range si.GetReplicas() {
			if rep.GetNodeId() != 0 && rep.GetClientAddr() != "" {
				r.nodes[rep.GetNodeId()] = rep.GetClientAddr()
			}
		}
		id := si.GetLeaderNodeId()
		if id == 0 {
			for _, rep := range si.GetReplicas() {
				if rep.GetLeader() {
					id = rep.GetNodeId()
				}
			}
		}
		if addr, ok := r.nodes[id]; ok && id != 0 {
			leaders[i] = leaderEntry{node: id, addr: addr}
		} else {
			missing = true
		}
		noLeader[i] = id == 0
	}
	r.leaders, r.noLeader = leaders, noLeader
	return missing
}

// seed fills the cache from info and dials the leaders' nodes, so the first calls do
// not wait for a connection; it refreshes in the background when a leader is unknown.
func (r *topicRoutes) seed(info *shardlogv1.TopicInfo) {
	if r.update(info) {
		r.refresh()
	}
	r.mu.Lock()
	addrs := make([]string, 0, len(r.leaders))
	for _, l := range r.leaders {
		if l.addr != "" && !slices.Contains(addrs, l.addr) {
			addrs = append(addrs, l.addr)
		}
	}
	r.mu.Unlock()
	for _, a := range addrs {
		r.c.poolConn(a)
	}
}

// target picks the connection for a call to shard: its leader's when known and not
// avoided, else the client's current address.
func (r *topicRoutes) target(shard uint32) callTarget {
	r.mu.Lock()
	var l leaderEntry
	if int(shard) < len(r.leaders) {
		l = r.leaders[shard]
	}
	r.mu.Unlock()
	if l.addr != "" {
		if cc := r.c.poolConn(l.addr); cc != nil {
			return callTarget{cc: cc, leader: true, node: l.node, addr: l.addr}
		}
	}
	i, cc := r.c.conn()
	return callTarget{cc: cc, idx: i}
}

// observe learns from the outcome of a call to shard made on t; md is the call's
// response header.
func (r *topicRoutes) observe(shard uint32, t callTarget, md metadata.MD, err error) {
	code := status.Code(err)
	down := code == codes.Unavailable || code == codes.DeadlineExceeded
	if !t.leader {
		r.c.observe(t.idx, err)
	}
	switch {
	case down:
		if t.leader {
			r.forget(shard, t.node)
			r.c.avoidAddr(t.addr, t.cc)
		}
		r.refresh()
	case err != nil:
		// Other errors say nothing about leadership.
	default:
		served := servedBy(md)
		if t.leader && served == t.node {
			return
		}
		if served != 0 && r.learn(shard, served) {
			return
		}
		if t.leader || r.unknown(shard) {
			// The cached leader forwarded the call (leadership moved), or the node
			// that served is not in the cache yet.
			r.refresh()
		}
	}
}

// servedBy parses the leader header; 0 when it is absent or malformed.
func servedBy(md metadata.MD) uint64 {
	vals := md.Get(shardlogv1.LeaderHeader)
	if len(vals) != 1 {
		return 0
	}
	id, err := strconv.ParseUint(vals[0], 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// learn records node as shard's leader when its address is known; it reports whether it
// was.
func (r *topicRoutes) learn(shard uint32, node uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr, ok := r.nodes[node]
	if !ok || int(shard) >= len(r.leaders) {
		return false
	}
	r.leaders[shard] = leaderEntry{node: node, addr: addr}
	r.noLeader[shard] = false
	return true
}

// leaderless reports whether the last DescribeTopic answer named no leader for shard
// and no call has been served by one since.
func (r *topicRoutes) leaderless(shard uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(shard) < len(r.noLeader) && r.noLeader[shard]
}

// forget drops shard's leader if it is still node.
func (r *topicRoutes) forget(shard uint32, node uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(shard) < len(r.leaders) && r.leaders[shard].node == node {
		r.leaders[shard] = leaderEntry{}
	}
}

// unknown reports whether shard has no cached leader.
func (r *topicRoutes) unknown(shard uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(shard) >= len(r.leaders) || r.leaders[shard].addr == ""
}

// refresh asks for the topic's leaders again, in the background and at most once per
// refreshInterval; a request while a refresh runs or waits is folded into one more.
func (r *topicRoutes) refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refreshing {
		r.pending = true
		return
	}
	r.refreshing = true
	if !r.c.spawn(r.refreshLoop) {
		r.refreshing = false
	}
}

func (r *topicRoutes) refreshLoop(ctx context.Context) {
	for {
		r.mu.Lock()
		wait := time.Until(r.last.Add(refreshInterval))
		r.mu.Unlock()
		if wait > 0 {
			sleep(ctx, wait)
		}
		r.mu.Lock()
		if ctx.Err() != nil {
			break
		}
		r.last, r.pending = time.Now(), false
		r.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		info, err := r.c.DescribeTopic(rctx, r.topic, true)
		cancel()
		if err == nil {
			r.update(info)
		} else if ctx.Err() == nil {
			r.c.log.Debug("client: refresh leaders", "topic", r.topic, "err", err)
		}
		r.mu.Lock()
		if !r.pending {
			break
		}
		r.mu.Unlock()
	}
	r.refreshing = false
	r.mu.Unlock()
}
