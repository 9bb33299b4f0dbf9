package node

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"shardlog/ids"
)

// identity is what a node keeps about itself in <dir>/node.json.
type identity struct {
	// NodeID is random, created on first start, and also the node's ReplicaID in the meta
	// group unless MetaReplicaID says otherwise.
	NodeID ids.NodeID `json:"node_id"`
	// RaftAddr is fixed for the directory's lifetime (dragonboat refuses another).
	RaftAddr string `json:"raft_addr"`
	// MetaStarted is set once the local meta replica was created (bootstrapped or joined);
	// from then on restarts need no --join.
	MetaStarted bool `json:"meta_started"`
	// MetaVoter says whether this node joined the meta group as a voter. It is not
	// changed when the meta leader promotes a non-voting node later: a replica that
	// joined as non-voting must restart as non-voting (dragonboat replays its
	// AddNonVoting and panics if the replica is not one), and the replay of the
	// promotion, or the snapshot's membership, makes it a voter again.
	MetaVoter bool `json:"meta_voter"`
	// MetaReplicaID is the node's replica ID in the meta group when it is not
	// NodeID: set when the node rejoined the meta group after its replica there
	// was removed while it was gone (rejoinMeta). 0: NodeID.
	MetaReplicaID uint64 `json:"meta_replica_id,omitempty"`
}

const identityFile = "node.json"

func loadIdentity(dir string) (identity, bool, error) {
	var id identity
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, false, nil
	}
	if err != nil {
		return id, false, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, false, fmt.Errorf("node: %s is corrupt: %w", filepath.Join(dir, identityFile), err)
	}
	if id.NodeID == 0 {
		return id, false, fmt.Errorf("node: %s has no node ID", filepath.Join(dir, identityFile))
	}
	return id, true, nil
}

func newNodeID() ids.NodeID {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		// Keep IDs below 2^63 so they print the same signed and unsigned in JSON tools.
		if id := binary.LittleEndian.Uint64(b[:]) >> 1; id != 0 {
			return ids.NodeID(id)
		}
	}
}

// saveIdentity writes the file atomically: temp file, fsync, rename, fsync dir.
func saveIdentity(dir string, id identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, identityFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, identityFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
