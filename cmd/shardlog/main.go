package main
import (
 _ "github.com/lni/dragonboat/v4"
 _ "github.com/lni/dragonboat/v4/plugin/tan"
 _ "github.com/cockroachdb/pebble"
 _ "github.com/cockroachdb/pebble/v2"
 _ "github.com/hashicorp/memberlist"
 _ "google.golang.org/grpc"
 _ "google.golang.org/protobuf/proto"
 _ "github.com/klauspost/compress/zstd"
 _ "github.com/klauspost/compress/s2"
 _ "github.com/lni/vfs"
)
func main(){}
