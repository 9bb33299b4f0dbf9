package shard

import (
	"context"
	"shardlog/ids"
	"time"

	"github.com/lni/dragonboat/v4/statemachine"
)

// Raft is what the data path needs from the Raft groups of the shards this
// node hosts. node implements it over its dragonboat NodeHost; the tests of
// this package use a fake.
type Raft interface {
	// Propose hands cmd to the local replica of the shard for its Raft log and
	// returns once the entry is queued. Entries of one caller enter the log in
	// the order their Propose calls returned (the sequence gate relies on it).
	// Raft drops the entry if it is not applied within timeout.
	Propose(shardID ids.ShardID, cmd []byte, timeout time.Duration) (Proposal, error)
	// ReadIndex returns once the local replica has applied every entry that was
	// committed when ReadIndex was called: what it holds then is the whole log.
	ReadIndex(ctx context.Context, shardID ids.ShardID) error
	// IsLeader reports whether the local replica leads the shard.
	IsLeader(shardID ids.ShardID) bool
}

// Proposal is an entry queued by Raft.Propose.
type Proposal interface {
	// Wait returns the Result that Update gave the entry once it is committed
	// and applied, or the reason it was not. When ctx ends first the outcome
	// is unknown (the entry may still commit) and Wait returns an error. Wait
	// is called once; it releases what the proposal holds.
	Wait(ctx context.Context) (statemachine.Result, error)
}
