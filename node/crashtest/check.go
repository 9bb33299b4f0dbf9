package crashtest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"shardlog/chaos"
)

// Value returns the record value the workload sends as producer's record seq: the
// chaos harness's "p<producer>-<seq>", a '|', and a pad derived from seed, producer and
// seq, so a stored value that was cut or altered is caught.
func Value(seed uint64, producer int, seq uint64) string {
	return chaos.Value(producer, seq) + "|" + pad(seed, producer, seq)
}

func pad(seed uint64, producer int, seq uint64) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[0:], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(producer))
	binary.BigEndian.PutUint64(b[16:], seq)
	h := sha256.Sum256(b[:])
	return hex.EncodeToString(h[:24])
}

// parseValue returns the chaos value ("p<producer>-<seq>") of a stored value, and false
// when the value is not one the workload of seed could have sent.
func parseValue(seed uint64, v string) (string, bool) {
	id, got, found := strings.Cut(v, "|")
	if !found {
		return "", false
	}
	producer, seq, ok := chaos.ParseValue(id)
	if !ok || got != pad(seed, producer, seq) {
		return "", false
	}
	return id, true
}

// Stored is one record read back from a replica.
type Stored struct {
	Offset uint64
	Value  string
}

// Replica is everything one node's replica of one shard holds, in offset order.
type Replica struct {
	Shard   uint32
	Node    string
	Records []Stored
}

// History is what a crash run recorded. Acks are the acknowledgements that arrived
// while the power was on in their producer's epoch: those records must survive.
// Indeterminate are the records whose produce failed or was acknowledged after a power
// cut: they may be stored, once, or not at all.
type History struct {
	Seed          uint64
	Shards        uint32
	Acks          []chaos.Ack
	Indeterminate []chaos.Failed
	Replicas      []Replica
}

// Report is the verdict: chaos.Check's (lost, duplicated, divergent, unknown, order)
// plus the checks chaos.Check cannot make on logs it gets dense.
type Report struct {
	chaos.Report
	// Gaps counts offsets at which a replica's log jumps (or starts above 0: the crash
	// test uses no retention): the log is not dense.
	Gaps int `json:"gaps"`
	// Corrupt counts stored values that are not a value the workload sent (cut,
	// altered, or garbage).
	Corrupt int `json:"corrupt"`
}

// Violations counts every safety violation.
func (r *Report) Violations() int { return r.Report.Violations() + r.Gaps + r.Corrupt }

// String summarises the report on one line, with examples of what went wrong.
func (r *Report) String() string {
	s := fmt.Sprintf("acknowledged %d, indeterminate %d (found %d), final records %d: lost %d, duplicated %d, divergent %d, unknown %d, order %d, gaps %d, corrupt %d",
		r.Acknowledged, r.Indeterminate, r.IndeterminateFound, r.FinalRecords, r.Lost, r.Duplicated, r.Divergent,
		r.UnknownRecords, r.OrderViolations, r.Gaps, r.Corrupt)
	for _, kind := range slices.Sorted(maps.Keys(r.Examples)) {
		s += fmt.Sprintf("\n  %s: %s", kind, strings.Join(r.Examples[kind], "; "))
	}
	return s
}

// Check is a pure function of h. Each replica's records become a dense chaos.ReplicaLog
// up to its first gap (the gap itself is a violation, and acknowledged records past it
// count as lost unless another replica holds them); values are checked against their
// pad and stripped to the chaos value.
func Check(h History) Report {
	var r Report
	examples := map[string][]string{}
	example := func(kind, format string, args ...any) {
		if len(examples[kind]) < 5 {
			examples[kind] = append(examples[kind], fmt.Sprintf(format, args...))
		}
	}
	var logs []chaos.ReplicaLog
	for _, rep := range h.Replicas {
		l := chaos.ReplicaLog{Shard: rep.Shard, Node: rep.Node}
		dense := true
		for _, rec := range rep.Records {
			if rec.Offset != l.End() {
				r.Gaps++
				example("gaps", "shard %d on %s: offset %d follows %d", rep.Shard, rep.Node, rec.Offset, int64(l.End())-1)
				dense = false
			}
			v, ok := parseValue(h.Seed, rec.Value)
			if !ok {
				r.Corrupt++
				example("corrupt", "shard %d on %s offset %d holds %.60q", rep.Shard, rep.Node, rec.Offset, rec.Value)
				v = rec.Value
			}
			if dense {
				// The crash workload sets no key, headers or timestamp: the pad
				// above checks the value, and the record is what chaos expects.
				rec := chaos.Record{Value: v}
				if p, seq, ok := chaos.ParseValue(v); ok {
					rec = chaos.Expect(p, seq, 0)
				}
				l.Records = append(l.Records, rec)
			}
		}
		logs = append(logs, l)
	}
	r.Report = chaos.Check(chaos.History{Seed: h.Seed, Topics: []chaos.TopicSpec{{Shards: h.Shards}},
		Acks: h.Acks, Failed: h.Indeterminate, Logs: logs})
	if len(examples) > 0 && r.Examples == nil {
		r.Examples = map[string][]string{}
	}
	for k, v := range examples {
		r.Examples[k] = v
	}
	return r
}
