package localcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"shardlog/proto/shardlogv1"
)

// WaitServing waits until node i answers DescribeCluster, or ctx ends.
func (c *Cluster) WaitServing(ctx context.Context, i int) error {
	n := c.nodes[i]
	for {
		if !c.Running(i) {
			if c.cfg.Stdout != nil {
				return fmt.Errorf("localcluster: %s exited while starting", n.Name)
			}
			return fmt.Errorf("localcluster: %s exited while starting (see %s)", n.Name, filepath.Join(c.cfg.Dir, n.Name+".log"))
		}
		if _, err := c.describe(ctx, i, time.Second); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localcluster: %s not serving at %s: %w", n.Name, n.Addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describe asks node i for the cluster description.
func (c *Cluster) describe(ctx context.Context, i int, timeout time.Duration) (*shardlogv1.DescribeClusterResponse, error) {
	cc, err := grpc.NewClient(c.nodes[i].Addr, shardlogv1.DialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("localcluster: dial %s: %w", c.nodes[i].Name, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return shardlogv1.NewAdminClient(cc).DescribeCluster(ctx, &shardlogv1.DescribeClusterRequest{})
}

// WaitMembers waits until the last node sees every node registered and ALIVE and a
// meta leader, or ctx ends.
func (c *Cluster) WaitMembers(ctx context.Context) error {
	last := len(c.nodes) - 1
	var seen string
	for {
		resp, err := c.describe(ctx, last, 2*time.Second)
		if err == nil {
			alive := 0
			for _, n := range resp.GetNodes() {
				if n.GetState() == "ALIVE" {
					alive++
				}
			}
			if alive >= len(c.nodes) && resp.GetMetaLeaderNodeId() != 0 {
				return nil
			}
			seen = fmt.Sprintf("%d of %d nodes ALIVE", alive, len(c.nodes))
		} else {
			seen = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localcluster: cluster did not form (%s): %w", seen, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
