package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"shardlog/proto/shardlogv1"
)

// Sentinel errors of the client package.
var (
	// ErrNoAddress is returned by Dial when no server address is given.
	ErrNoAddress = errors.New("client: no server address")
	// ErrNotConnected is returned by Dial when no address became reachable within DialTimeout.
	ErrNotConnected = errors.New("client: could not connect to any server")
	// ErrClosed is returned by calls on a closed Client, Producer or Consumer.
	ErrClosed = errors.New("client: closed")
	// ErrInvalidShard is returned when a shard index is outside the topic's shards.
	ErrInvalidShard = errors.New("client: invalid shard")
	// ErrDeliveryTimeout is reported for records that were not acknowledged within
	// ProducerOptions.DeliveryTimeout; the record may or may not have been written.
	ErrDeliveryTimeout = errors.New("client: delivery timeout")
	// ErrEarlierBatchFailed is reported for records of a batch that was sent after a batch
	// of the same shard that failed for good; it can no longer be applied in order.
	ErrEarlierBatchFailed = errors.New("client: an earlier batch of this shard failed")
	// ErrRecordTooLarge is returned by Send for a record larger than the producer's
	// BatchBytes limit allows.
	ErrRecordTooLarge = errors.New("client: record too large")
	// ErrOutOfRange is returned by a strict Consumer when its position left the shard's log.
	ErrOutOfRange = errors.New("client: offset out of range")
)

// Options configures a Client.
type Options struct {
	// DialTimeout bounds how long Dial waits for the first server to become reachable.
	// Default 5s.
	DialTimeout time.Duration
	// DialOptions are extra gRPC dial options (custom dialers, credentials). Without
	// transport credentials among them the connection is insecure (plain TCP).
	DialOptions []grpc.DialOption
	// Logger receives the client's rare log lines (resets, retries given up). Default
	// slog.Default().
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Client is a connection to a shardlog cluster. It is safe for concurrent use.
type Client struct {
	addrs []string
	conns []*grpc.ClientConn
	cur   atomic.Uint32 // index into conns of the address calls go to
	log   *slog.Logger
	dopts []grpc.DialOption

	bg       context.Context // canceled by Close; background leader refreshes run under it
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	mu     sync.Mutex // guards the fields below; lock order: topicRoutes.mu, then mu
	closed bool
	pool   map[string]*grpc.ClientConn // by address: the dialed ones and leaders' nodes
	avoid  map[string]time.Time        // leader address -> until when calls skip it
	routes map[string]*topicRoutes     // per topic: shard leaders
}

// Dial connects to the servers at addrs (host:port, client port). It returns once at
// least one of them is reachable, or ErrNotConnected after o.DialTimeout.
func Dial(ctx context.Context, addrs []string, o Options) (*Client, error) {
	if len(addrs) == 0 {
		return nil, ErrNoAddress
	}
	o.ensureDefaults()
	dopts := shardlogv1.DialOptions(o.DialOptions...)
	c := &Client{
		addrs: append([]string(nil), addrs...), log: o.Logger, dopts: dopts,
		pool:   make(map[string]*grpc.ClientConn),
		avoid:  make(map[string]time.Time),
		routes: make(map[string]*topicRoutes),
	}
	for _, a := range addrs {
		cc, err := grpc.NewClient(a, dopts...)
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("client: dial %s: %w", a, err)
		}
		c.conns = append(c.conns, cc)
		if _, ok := c.pool[a]; !ok {
			c.pool[a] = cc
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	ready, err := c.waitReady(ctx)
	if err != nil {
		c.closeConns()
		return nil, fmt.Errorf("%w %v: %v", ErrNotConnected, addrs, err)
	}
	c.cur.Store(uint32(ready))
	c.bg, c.bgCancel = context.WithCancel(context.Background())
	return c, nil
}

// waitReady connects all conns and returns the index of the first one that is READY.
func (c *Client) waitReady(ctx context.Context) (int, error) {
	found := make(chan int, len(c.conns))
	for i, cc := range c.conns {
		cc.Connect()
		go func() {
			for {
				s := cc.GetState()
				if s == connectivity.Ready {
					found <- i
					return
				}
				if s == connectivity.Shutdown || !cc.WaitForStateChange(ctx, s) {
					return
				}
				if cc.GetState() == connectivity.Idle {
					cc.Connect()
				}
			}
		}()
	}
	select {
	case i := <-found:
		return i, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *Client) closeConns() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// Close closes all connections. Producers and consumers of this client must be closed first.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.bgCancel()
	c.bgWG.Wait()
	var errs []error
	for _, cc := range c.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, cc := range c.pool {
		if !slices.Contains(c.conns, cc) {
			if err := cc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("client: close %s: %w", a, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Addrs returns the server addresses the client was dialed with.
func (c *Client) Addrs() []string { return append([]string(nil), c.addrs...) }

// conn returns the current connection and its index.
func (c *Client) conn() (int, *grpc.ClientConn) {
	i := int(c.cur.Load()) % len(c.conns)
	return i, c.conns[i]
}

// failover moves calls to the next address after a call on conn i failed with
// Unavailable or DeadlineExceeded.
// Only the first caller that saw index i moves it, so concurrent failures advance once.
func (c *Client) failover(i int) {
	if len(c.conns) > 1 {
		c.cur.CompareAndSwap(uint32(i), uint32((i+1)%len(c.conns)))
	}
}

// observe records the outcome of a call made on conn i. A node that is down
// answers Unavailable; one that is paused or cut off answers nothing, so the call
// runs into its deadline: both move later calls to the next address.
func (c *Client) observe(i int, err error) {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		c.failover(i)
	}
}

// admin runs an admin call, trying each address once while the answer is Unavailable.
func admin[T any](ctx context.Context, c *Client, call func(shardlogv1.AdminClient) (T, error)) (T, error) {
	var zero T
	var err error
	for range len(c.conns) {
		i, cc := c.conn()
		var res T
		res, err = call(shardlogv1.NewAdminClient(cc))
		if err == nil {
			return res, nil
		}
		c.observe(i, err)
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			break
		}
	}
	return zero, err
}

// CreateTopic creates a topic and returns it with its shard placement.
func (c *Client) CreateTopic(ctx context.Context, spec *shardlogv1.TopicSpec) (*shardlogv1.TopicInfo, error) {
	resp, err := admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.CreateTopicResponse, error) {
		return a.CreateTopic(ctx, &shardlogv1.CreateTopicRequest{Spec: spec})
	})
	if err != nil {
		return nil, err
	}
	return resp.GetTopic(), nil
}

// DeleteTopic deletes a topic and its data.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	_, err := admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.DeleteTopicResponse, error) {
		return a.DeleteTopic(ctx, &shardlogv1.DeleteTopicRequest{Name: name})
	})
	return err
}

// ListTopics returns every topic.
func (c *Client) ListTopics(ctx context.Context) ([]*shardlogv1.TopicInfo, error) {
	resp, err := admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.ListTopicsResponse, error) {
		return a.ListTopics(ctx, &shardlogv1.ListTopicsRequest{})
	})
	if err != nil {
		return nil, err
	}
	return resp.GetTopics(), nil
}

// DescribeTopic returns one topic; with offsets it also fills each shard's first and
// next offset (or its status_error when the shard's leader could not answer).
func (c *Client) DescribeTopic(ctx context.Context, name string, offsets bool) (*shardlogv1.TopicInfo, error) {
	resp, err := admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.DescribeTopicResponse, error) {
		return a.DescribeTopic(ctx, &shardlogv1.DescribeTopicRequest{Name: name, Offsets: offsets})
	})
	if err != nil {
		return nil, err
	}
	return resp.GetTopic(), nil
}

// DescribeCluster returns the nodes, topics, placement and meta state seen by the
// answering node.
func (c *Client) DescribeCluster(ctx context.Context) (*shardlogv1.DescribeClusterResponse, error) {
	return admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.DescribeClusterResponse, error) {
		return a.DescribeCluster(ctx, &shardlogv1.DescribeClusterRequest{})
	})
}
