package gossip

import (
	"encoding/json"
	"fmt"
	"shardlog/ids"
)

// NodeMeta is the metadata every node gossips about itself.
type NodeMeta struct {
	// ClientAddr is the node's gRPC address (host:port) for clients and
	// node-to-node forwarding.
	ClientAddr string
	// Zone is the node's failure domain (rack, availability zone); may be
	// empty.
	Zone string
	// DiskFull says the free space of the node's data file system is below
	// its --min-free-disk: leaders refuse writes to the shards it holds.
	DiskFull bool
	// DiskFreeBytes and MinFreeDiskBytes are the free space and the limit
	// when the node last became full (zero while DiskFull is false), so
	// another node's refusal can name them. They change only when DiskFull
	// does: gossiping the live figure would rebroadcast every second.
	DiskFreeBytes    uint64
	MinFreeDiskBytes uint64
}

// wireMeta is NodeMeta as gossiped: compact JSON with one-letter keys, plus
// the leaving flag that Leave sets so peers can tell LEFT from DEAD
// (memberlist does not tell its event delegate which one it saw).
type wireMeta struct {
	ClientAddr string `json:"c,omitempty"`
	Zone       string `json:"z,omitempty"`
	Leaving    bool   `json:"l,omitempty"`
	DiskFull   bool   `json:"d,omitempty"`
	DiskFree   uint64 `json:"df,omitempty"`
	DiskMin    uint64 `json:"dm,omitempty"`
}

// encodeMeta encodes metadata for memberlist.
func encodeMeta(m NodeMeta, leaving bool) ([]byte, error) {
	b, err := json.Marshal(wireMeta{ClientAddr: m.ClientAddr, Zone: m.Zone, Leaving: leaving,
		DiskFull: m.DiskFull, DiskFree: m.DiskFreeBytes, DiskMin: m.MinFreeDiskBytes})
	if err != nil {
		return nil, fmt.Errorf("gossip: encode node meta: %w", err)
	}
	return b, nil
}

// decodeMeta decodes metadata gossiped by a peer. Empty input is the zero
// NodeMeta; unknown fields are ignored so newer nodes can add some.
func decodeMeta(b []byte) (m NodeMeta, leaving bool, err error) {
	if len(b) == 0 {
		return NodeMeta{}, false, nil
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return NodeMeta{}, false, fmt.Errorf("gossip: decode node meta: %w", err)
	}
	return NodeMeta{ClientAddr: w.ClientAddr, Zone: w.Zone, DiskFull: w.DiskFull,
		DiskFreeBytes: w.DiskFree, MinFreeDiskBytes: w.DiskMin}, w.Leaving, nil
}

// msgLeaving tags the user message a node sends to each peer before it
// leaves; the rest of the message is its node name.
const msgLeaving = 'L'

// encodeLeaving builds the leave announcement for node id.
func encodeLeaving(id ids.NodeID) []byte {
	return append([]byte{msgLeaving}, nodeName(id)...)
}

// decodeLeaving parses a leave announcement.
func decodeLeaving(b []byte) (ids.NodeID, bool) {
	if len(b) == 0 || b[0] != msgLeaving {
		return 0, false
	}
	return parseNodeName(string(b[1:]))
}
