package meta

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	lnivfs "github.com/lni/vfs"
)

// quietDragonboat lowers dragonboat's log levels for the test binary.
func quietDragonboat() {
	for _, name := range []string{"dragonboat", "raft", "rsm", "transport", "logdb", "raftpb",
		"config", "settings", "server", "registry", "pebblekv", "tan", "gossip"} {
		logger.GetLogger(name).SetLevel(logger.ERROR)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestMetaNodeHostCreateTopicAndSyncRead(t *testing.T) {
	quietDragonboat()
	// pebble (dragonboat's LogDB) reports that the in-memory FS cannot
	// tell disk usage through the standard logger.
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	addr := freeAddr(t)
	nh, err := dragonboat.NewNodeHost(config.NodeHostConfig{
		NodeHostDir:    "nh",
		RTTMillisecond: 10,
		RaftAddress:    addr,
		Expert: config.ExpertConfig{
			FS:     lnivfs.NewMem(),
			LogDB:  config.GetTinyMemLogDBConfig(),
			Engine: config.GetDefaultEngineConfig(),
		},
	})
	if err != nil {
		t.Fatalf("NewNodeHost: %v", err)
	}
	defer nh.Close()

	applied := make(chan uint64, 16)
	notify := func(i uint64) {
		select {
		case applied <- i:
		default:
		}
	}
	err = nh.StartReplica(map[uint64]dragonboat.Target{1: addr}, false, NewStateMachine(notify), config.Config{
		ReplicaID: 1, ShardID: uint64(ShardID), ElectionRTT: 10, HeartbeatRTT: 1,
		CheckQuorum: true, PreVote: true, SnapshotEntries: 100, CompactionOverhead: 50,
	})
	if err != nil {
		t.Fatalf("StartReplica: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	propose := func(c Command) Result {
		t.Helper()
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		for {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			r, err := nh.SyncPropose(pctx, nh.GetNoOPSession(uint64(ShardID)), b)
			pcancel()
			if err == nil {
				return r
			}
			if !dragonboat.IsTempError(err) || ctx.Err() != nil {
				t.Fatalf("SyncPropose: %v", err)
			}
			time.Sleep(20 * time.Millisecond) // no leader yet
		}
	}

	node := Node{ID: 77, ClientAddr: "127.0.0.1:7400", RaftAddr: addr, Zone: "a", MetaVoter: true}
	if err := ResultError(propose(register(node))); err != nil {
		t.Fatal(err)
	}
	created, err := ResultTopic(propose(createCmd(spec("orders", 3, 1), candidates(77), Limits{})))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ResultTopic(propose(createCmd(spec("wide", 1, 2), candidates(77), Limits{})))
	if !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("rf 2 on one node: %v", err)
	}

	v, err := nh.SyncRead(ctx, uint64(ShardID), nil)
	if err != nil {
		t.Fatalf("SyncRead: %v", err)
	}
	s := v.(*State)
	got := s.Topics["orders"]
	if got == nil || stateJSONOf(t, got) != stateJSONOf(t, created) || len(s.ShardsOnNode(77)) != 3 {
		t.Fatalf("read back %+v, created %+v", got, created)
	}
	select {
	case <-applied:
	default:
		t.Fatal("onApply was never called")
	}
}
