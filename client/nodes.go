package client

import (
	"context"

	"shardlog/proto/shardlogv1"
)

// DrainNode starts the drain of the node with readable number num (as
// DescribeCluster's NodeInfo.Num shows it): the cluster moves every replica and
// leadership off it. It returns at once; DescribeCluster shows the moves in
// progress and the node's replica count going to zero. cancel stops a drain.
func (c *Client) DrainNode(ctx context.Context, num uint32, cancel bool) (*shardlogv1.NodeInfo, error) {
	resp, err := admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.DrainNodeResponse, error) {
		return a.DrainNode(ctx, &shardlogv1.DrainNodeRequest{Node: num, Cancel: cancel})
	})
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}

// RemoveNode removes the node with readable number num from the cluster for
// good. Only a node that holds no replica (drained, or dead and re-replicated)
// can be removed; its number is never handed out again.
func (c *Client) RemoveNode(ctx context.Context, num uint32) (*shardlogv1.NodeInfo, error) {
	resp, err := admin(ctx, c, func(a shardlogv1.AdminClient) (*shardlogv1.RemoveNodeResponse, error) {
		return a.RemoveNode(ctx, &shardlogv1.RemoveNodeRequest{Node: num})
	})
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}
