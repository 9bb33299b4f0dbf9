package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"google.golang.org/grpc"

	"shardlog/gossip"
	"shardlog/ids"
	"shardlog/meta"
	pb "shardlog/proto/shardlogv1"
	"shardlog/segment"
	"shardlog/shard"
)

// Node is one running shardlog server: a dragonboat NodeHost with the meta replica and
// this node's shard replicas, the segment store, gossip and the gRPC server.
//
// Goroutines (all owned by Node and joined in Close): the gRPC server; metaLoop, which
// refreshes the meta view and reconciles replicas; registerLoop until the view shows
// this node; wakeLoop, which wakes quiesced shards whose leader failed; moveLoop, which
// runs the steps of the replica moves of shards led here (one goroutine per step in
// flight, at most one per shard); four n.every loops (retention, leader balance, disk
// space, and healPass, the controller on the meta leader). n.runMu is a leaf lock (never held across a
// dragonboat call).
type Node struct {
	cfg Config
	log *slog.Logger
	id  identity

	nh     *dragonboat.NodeHost
	store  *segment.Store
	hub    *shard.Hub
	gossip *gossip.Gossip
	grpc   *grpc.Server
	lis    net.Listener
	peers  *peerPool
	data   *shard.Replicas // the data path of the shard replicas here
	disk   *diskMonitor

	view atomic.Pointer[meta.State]
	// down holds the nodes gossip reports failed that did not answer a direct call
	// either (wakeLoop writes it, routing reads it).
	down        atomic.Pointer[map[ids.NodeID]bool]
	metaChanged chan struct{}
	// leaderHints caches shardID -> NodeID of the last node seen leading the shard.
	leaderHints sync.Map
	// moving holds the shard IDs whose move step runs now (moveLoop).
	moving sync.Map
	// unseen times the registered nodes gossip has no row for (nodeGone).
	unseen downClock

	runMu   sync.RWMutex
	running map[ids.ShardID]ids.ReplicaID // shardID -> ReplicaID of replicas started here; guarded by runMu
	// cleanedIndex and cleanedAt: the view index and time of the last scan for
	// retired replicas' data (removeLeftovers); metaLoop only.
	cleanedIndex uint64
	cleanedAt    time.Time
	// leftGossip is set once the node found itself removed and left gossip; metaLoop only.
	leftGossip bool
	// num is the node's readable number once the view shows it (0 before); the
	// logger tags every line with it.
	num *atomic.Uint32
	// metaRID is the node's replica ID in the meta group (its NodeID unless it
	// rejoined with a new one); metaLeaderless is since when its meta replica has
	// known no leader (checkMetaReplica's loop only).
	metaRID        atomic.Uint64
	metaLeaderless time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start opens (or creates) the node's directory, joins or bootstraps the cluster,
// and serves until Close.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	setupDragonboatLogging(cfg.Logger, cfg.DragonboatLogLevel.Level())
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: create --dir: %w", err)
	}
	id, err := openIdentity(cfg)
	if err != nil {
		return nil, err
	}
	n := newNode(cfg, id)
	n.disk = newDiskMonitor(cfg.Dir, cfg.MinFreeDiskBytes, statfs, n.log)
	n.disk.check() // before gossip starts, so the first metadata carries the disk state
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	n.store, err = segment.Open(filepath.Join(cfg.Dir, "segments"), segment.Options{Logger: n.log, FS: n.cfg.SegmentFS})
	if err != nil {
		return nil, fmt.Errorf("node: open segment store: %w", err)
	}
	n.data = shard.NewReplicas(shardRaft{n}, n.store, n.hub,
		shard.ReplicasConfig{ProposalTimeout: cfg.ProposalTimeout, SequenceWait: cfg.SequenceWait})
	if err := n.startNodeHost(); err != nil {
		return nil, err
	}
	if err := n.startGRPC(); err != nil {
		return nil, err
	}
	seeds, err := n.startMeta(ctx)
	if err != nil {
		return nil, err
	}
	// A restarted node finds its gossip peers in its own meta replica: wait (briefly)
	// for the replica to replay so gossip can rejoin at once instead of at the next
	// rejoin tick.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v, err := n.refreshView(); err == nil && v != nil && len(v.Nodes) > 0 {
			break
		}
	}
	if err := n.startGossip(seeds); err != nil {
		return nil, err
	}
	n.wg.Add(9)
	go n.every(metaCheckInterval, n.checkMetaReplica)
	go n.moveLoop()
	go n.every(n.cfg.HealInterval, n.healPass)
	go n.metaLoop()
	go n.wakeLoop()
	go n.registerLoop()
	go n.every(n.cfg.RetentionInterval, n.applyRetention)
	go n.every(n.cfg.LeaderBalanceInterval, n.balanceLeaders)
	go n.every(diskCheckInterval, n.checkDisk)
	n.log.Info("node started", "client", cfg.ClientAddr(), "raft", cfg.RaftAddr(), "gossip", cfg.GossipAddr(),
		"zone", cfg.Zone, "meta_voter", n.id.MetaVoter)
	return n, nil
}

// openIdentity reads the node's identity from its directory, or creates one.
func openIdentity(cfg Config) (identity, error) {
	id, exists, err := loadIdentity(cfg.Dir)
	if err != nil {
		return id, err
	}
	if !exists {
		id = identity{NodeID: newNodeID(), RaftAddr: cfg.RaftAddr()}
		if err := saveIdentity(cfg.Dir, id); err != nil {
			return id, fmt.Errorf("node: save identity: %w", err)
		}
	} else if id.RaftAddr != cfg.RaftAddr() {
		return id, fmt.Errorf("node: %s was created with Raft address %s, now %s: the Raft address of a directory cannot change",
			cfg.Dir, id.RaftAddr, cfg.RaftAddr())
	}
	return id, nil
}

// newNode makes the Node value, before anything is opened or started.
func newNode(cfg Config, id identity) *Node {
	num := new(atomic.Uint32)
	n := &Node{
		cfg:         cfg,
		log:         slog.New(numHandler{inner: cfg.Logger.Handler(), num: num, id: id.NodeID}),
		num:         num,
		id:          id,
		hub:         shard.NewHub(),
		peers:       newPeerPool(),
		metaChanged: make(chan struct{}, 1),
		running:     map[ids.ShardID]ids.ReplicaID{},
		unseen:      downClock{unseen: map[ids.NodeID]time.Time{}},
	}
	n.metaRID.Store(uint64(id.NodeID))
	if id.MetaReplicaID != 0 {
		n.metaRID.Store(id.MetaReplicaID)
	}
	return n
}

// ID is the node's ID.
func (n *Node) ID() ids.NodeID { return n.id.NodeID }

// ClientAddr is the address clients dial.
func (n *Node) ClientAddr() string { return n.cfg.ClientAddr() }

// Store exposes the node's segment store (tests check what is on disk).
func (n *Node) Store() *segment.Store { return n.store }

func (n *Node) startNodeHost() error {
	logdb := config.GetSmallMemLogDBConfig()
	switch n.cfg.LogDBMemory {
	case "tiny":
		logdb = config.GetTinyMemLogDBConfig()
	case "medium":
		logdb = config.GetMediumMemLogDBConfig()
	}
	engine := config.GetDefaultEngineConfig()
	engine.ExecShards = n.cfg.ExecShards
	nhc := config.NodeHostConfig{
		NodeHostDir:    filepath.Join(n.cfg.Dir, "raft"),
		RTTMillisecond: n.cfg.RTTMillisecond,
		RaftAddress:    n.cfg.RaftAddr(),
		ListenAddress:  hostPort(n.cfg.Host, n.cfg.RaftPort),
		DeploymentID:   n.cfg.DeploymentID,
		// Bound per-peer queues so a slow peer cannot take all memory.
		MaxSendQueueSize:    256 << 20,
		MaxReceiveQueueSize: 256 << 20,
		Expert: config.ExpertConfig{
			LogDB:  logdb,
			Engine: engine,
			FS:     n.cfg.RaftFS, // nil: the real disk
		},
	}
	if n.cfg.LogDB == "tan" {
		nhc.Expert.LogDBFactory = tan.Factory
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return fmt.Errorf("node: start Raft on %s: %w", nhc.ListenAddress, err)
	}
	n.nh = nh
	return nil
}

func (n *Node) startGRPC() error {
	lis, err := net.Listen("tcp", hostPort(n.cfg.Host, n.cfg.Port))
	if err != nil {
		return fmt.Errorf("node: listen for clients: %w", err)
	}
	n.lis = lis
	n.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(n.cfg.MaxBatchBytes+(1<<20)),
		grpc.MaxSendMsgSize(n.cfg.MaxFetchBytes+n.cfg.MaxBatchBytes+(1<<20)),
		grpc.ChainUnaryInterceptor(n.unaryInterceptor),
		grpc.ChainStreamInterceptor(n.streamInterceptor),
	)
	pb.RegisterAdminServer(n.grpc, &adminService{n: n})
	pb.RegisterLogServer(n.grpc, &logService{n: n})
	pb.RegisterClusterServer(n.grpc, &clusterService{n: n})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("gRPC server stopped", "err", err)
		}
	}()
	return nil
}

func (n *Node) startGossip(seeds []string) error {
	g, err := gossip.Start(gossip.Config{
		NodeID:        n.id.NodeID,
		BindAddr:      n.cfg.Host,
		BindPort:      n.cfg.GossipPort,
		AdvertiseAddr: n.cfg.AdvertiseHost,
		AdvertisePort: n.cfg.GossipPort,
		Meta:          n.gossipMeta(),
		Logger:        n.log,
		Fast:          n.cfg.GossipFast,
		Seeds:         n.gossipSeeds,
	})
	if err != nil {
		return fmt.Errorf("node: start gossip on %s: %w", hostPort(n.cfg.Host, n.cfg.GossipPort), err)
	}
	n.gossip = g
	if len(seeds) == 0 {
		seeds = n.gossipSeeds()
	}
	if len(seeds) > 0 {
		if _, err := g.Join(seeds); err != nil {
			// Not fatal: the rejoin loop retries with the seeds from the meta view.
			n.log.Warn("gossip join failed; will retry", "seeds", seeds, "err", err)
		}
	}
	return nil
}

// gossipSeeds lists the gossip addresses of the other registered nodes.
func (n *Node) gossipSeeds() []string {
	v := n.view.Load()
	if v == nil {
		return nil
	}
	var out []string
	for _, nd := range v.SortedNodes() {
		if nd.ID != n.id.NodeID && nd.GossipAddr != "" {
			out = append(out, nd.GossipAddr)
		}
	}
	return out
}

// dial returns a pooled connection to a peer's client address.
func (n *Node) dial(addr string) (*grpc.ClientConn, error) { return n.peers.get(addr) }

// Close stops the node: gRPC first (no new work), then loops, gossip, replicas,
// dragonboat and the store. It is safe to call more than once.
func (n *Node) Close() {
	if !n.closed.CompareAndSwap(false, true) {
		return
	}
	n.cancel()
	if n.grpc != nil {
		stopped := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			n.grpc.Stop()
		}
	}
	if n.gossip != nil {
		_ = n.gossip.Leave(time.Second)
		_ = n.gossip.Shutdown()
	}
	n.wg.Wait()
	n.peers.close()
	if n.nh != nil {
		n.nh.Close()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.log.Error("close segment store", "err", err)
		}
	}
	n.log.Info("node stopped")
}

// peerPool keeps one gRPC connection per peer address, and the forwarded calls in
// flight to each, so they can be cut short when gossip reports the peer failed.
type peerPool struct {
	mu       sync.Mutex
	conns    map[string]*grpc.ClientConn
	inflight map[string]map[*call]struct{}
}

// call is one forwarded call in flight.
type call struct {
	cancel  context.CancelFunc
	aborted atomic.Bool
}

func newPeerPool() *peerPool {
	return &peerPool{conns: map[string]*grpc.ClientConn{}, inflight: map[string]map[*call]struct{}{}}
}

func (p *peerPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, pb.DialOptions()...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// track records a call to addr until the returned function is called.
func (p *peerPool) track(addr string, cancel context.CancelFunc) (*call, func()) {
	c := &call{cancel: cancel}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[addr] == nil {
		p.inflight[addr] = map[*call]struct{}{}
	}
	p.inflight[addr][c] = struct{}{}
	return c, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.inflight[addr], c)
		if len(p.inflight[addr]) == 0 {
			delete(p.inflight, addr)
		}
	}
}

// abort cancels every call in flight to addr and returns how many there were.
func (p *peerPool) abort(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.inflight[addr] {
		c.aborted.Store(true)
		c.cancel()
	}
	return len(p.inflight[addr])
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
}
