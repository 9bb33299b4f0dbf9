package shard

import (
	"context"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	lnivfs "github.com/lni/vfs"

	"shardlog/ids"
	"shardlog/segment"
)

var quietDragonboat sync.Once

func silenceDragonboat() {
	quietDragonboat.Do(func() {
		// dragonboat's pebble LogDB reports "vfs: not supported" background
		// errors on the in-memory FS through the standard logger.
		log.SetOutput(io.Discard)
		for _, name := range []string{"dragonboat", "raft", "rsm", "transport", "logdb", "raftpb",
			"config", "settings", "server", "registry", "pebblekv", "tan", "gossip"} {
			logger.GetLogger(name).SetLevel(logger.ERROR)
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestShardDragonboatProposeAndFetch runs the state machine under a real,
// in-memory, single-replica NodeHost.
func TestShardDragonboatProposeAndFetch(t *testing.T) {
	silenceDragonboat()
	store := memStore(t)
	hub := NewHub()
	addr := freeAddr(t)
	nhc := config.NodeHostConfig{
		NodeHostDir:    "nh",
		RTTMillisecond: 5,
		RaftAddress:    addr,
		Expert: config.ExpertConfig{
			FS:     lnivfs.NewMem(),
			LogDB:  config.GetTinyMemLogDBConfig(),
			Engine: config.GetDefaultEngineConfig(),
		},
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close() // before the store's Cleanup closes the DB

	const shardID, replicaID = 100, 1
	rc := config.Config{
		ShardID:         shardID,
		ReplicaID:       replicaID,
		ElectionRTT:     10,
		HeartbeatRTT:    1,
		CheckQuorum:     true,
		SnapshotEntries: 50,
	}
	members := map[uint64]dragonboat.Target{replicaID: addr}
	if err := nh.StartOnDiskReplica(members, false, NewFactory(store, hub, quiet), rc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		if _, _, ok, err := nh.GetLeaderID(shardID); err == nil && ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no leader")
		case <-time.After(5 * time.Millisecond):
		}
	}

	cs := nh.GetNoOPSession(shardID)
	var want []ids.Offset
	for seq := uint64(0); seq < 5; seq++ {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := nh.SyncPropose(pctx, cs, EncodeAppend(nil, 42, seq, encBatch(t, 2, "d")))
		pcancel()
		if err != nil {
			t.Fatal(err)
		}
		ar, err := DecodeResult(r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ar.Base)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	r, err := nh.SyncPropose(pctx, cs, EncodeAppend(nil, 42, 2, encBatch(t, 2, "d")))
	pcancel()
	if err != nil {
		t.Fatal(err)
	}
	if ar, err := DecodeResult(r); err != nil || !ar.Duplicate || ar.Base != 4 {
		t.Fatalf("retried proposal = %+v, %v", ar, err)
	}

	bs, st, err := Fetch(ctx, store, hub, shardID, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 5 || st.NextOffset != 10 {
		t.Fatalf("fetched %d batches, state %+v", len(bs), st)
	}
	for i, b := range bs {
		if b.Base != want[i] || b.Base != ids.Offset(2*i) {
			t.Fatalf("batch %d at %d, proposals said %v", i, b.Base, want)
		}
	}

	// A long poll at the end is woken by the next proposal.
	got := make(chan int, 1)
	go func() {
		bs, _, _ := Fetch(ctx, store, hub, shardID, 10, 1<<20, 5*time.Second)
		got <- len(bs)
	}()
	pctx, pcancel = context.WithTimeout(ctx, 2*time.Second)
	_, err = nh.SyncPropose(pctx, cs, EncodeAppend(nil, 0, 0, encBatch(t, 1, "e")))
	pcancel()
	if err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("long poll returned %d batches", n)
	}

	v, err := nh.SyncRead(ctx, shardID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := v.(segment.ShardState); st.NextOffset != 11 || st.ReplicaID != replicaID {
		t.Fatalf("Lookup through SyncRead = %+v", st)
	}
}
