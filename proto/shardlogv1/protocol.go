package shardlogv1

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// This file is written by hand: what every program that speaks the shardlog gRPC
// protocol shares besides the generated messages and services.

// LeaderHeader is the gRPC response header in which the node that served a call names
// itself (decimal node ID). Clients use it to learn a shard's leader; nodes set it on
// every routed call.
const LeaderHeader = "shardlog-leader"

// AuthHeader is the gRPC request metadata key that carries a client's bearer token
// ("Bearer <token>"); the server maps the token to a principal (--auth-file).
const AuthHeader = "authorization"

// MaxMessageBytes bounds one gRPC message in either direction: a produce batch plus its
// envelope, or a fetch response.
const MaxMessageBytes = 64 << 20

// DialOptions returns the options every shardlog connection is dialled with (plaintext
// transport, MaxMessageBytes each way), followed by extra.
func DialOptions(extra ...grpc.DialOption) []grpc.DialOption {
	return append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}, extra...)
}
