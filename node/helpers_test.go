package node_test

import (
	"testing"

	pb "shardlog/proto/shardlogv1"

	"google.golang.org/grpc"
)

type grpcConn = grpc.ClientConn

// rawConn dials addr for calls the client library does not expose (local fetches,
// hand-made batches).
func rawConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, pb.DialOptions()...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
