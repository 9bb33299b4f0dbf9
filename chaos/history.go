package chaos

// This file holds what a run records (History) and the checker's verdict (Report);
// checker.go holds Check, which turns one into the other.

// Ack is one record whose produce was acknowledged: the cluster promised it is stored at
// (Topic, Shard, Offset). Its key, headers and content follow from Producer, Seq and TsMs
// (Expect).
type Ack struct {
	Topic    string `json:"topic,omitempty"`
	Producer int    `json:"producer"`
	Seq      uint64 `json:"seq"`
	Shard    uint32 `json:"shard"`
	Offset   uint64 `json:"offset"`
	Value    string `json:"value"`
	// TsMs is the record timestamp the producer chose (unix ms).
	TsMs int64 `json:"ts_ms"`
	// SentAtMs is when the producer handed the record to the client, AtMs when the
	// acknowledgement arrived, both in milliseconds since the run started.
	SentAtMs int64 `json:"sent_at_ms"`
	AtMs     int64 `json:"at_ms"`
}

// Failed is one record whose produce reported an error. The record may or may not have
// been written (indeterminate), so it may appear in the final log at most once.
type Failed struct {
	Topic    string `json:"topic,omitempty"`
	Producer int    `json:"producer"`
	Seq      uint64 `json:"seq"`
	// Shard is the shard the record was sent to.
	Shard    uint32 `json:"shard"`
	Value    string `json:"value"`
	TsMs     int64  `json:"ts_ms"`
	SentAtMs int64  `json:"sent_at_ms"`
	Err      string `json:"err"`
}

// Read is one record a consumer saw, in the order it saw them.
type Read struct {
	Topic    string `json:"topic,omitempty"`
	Consumer int    `json:"consumer"`
	Shard    uint32 `json:"shard"`
	Offset   uint64 `json:"offset"`
	Record
}

// ReplicaLog is the final content of one replica of one shard, read from that node's own
// copy: Records[i] is the record at offset Start+i, up to the replica's end.
type ReplicaLog struct {
	Topic   string   `json:"topic,omitempty"`
	Shard   uint32   `json:"shard"`
	Node    string   `json:"node"`
	Start   uint64   `json:"start"`
	Records []Record `json:"records"`
}

// End returns the offset after the replica's last record.
func (l ReplicaLog) End() uint64 { return l.Start + uint64(len(l.Records)) }

// at returns the record at offset off, if the replica holds it.
func (l ReplicaLog) at(off uint64) (Record, bool) {
	if off < l.Start || off >= l.End() {
		return Record{}, false
	}
	return l.Records[off-l.Start], true
}

// Window is a time span in milliseconds since the run started.
type Window struct {
	StartMs int64 `json:"start_ms"`
	EndMs   int64 `json:"end_ms"`
}

// FaultEvent is one injected fault: its type (kill, pause, partition, restart-all), the
// nodes it hit and when. Down and Cut say what the cluster looked like during it; the
// availability check derives from them which shards kept a live, connected majority.
type FaultEvent struct {
	Type string `json:"type"`
	// Nodes describes the fault's targets (node names, or the sides of a partition).
	Nodes []string `json:"nodes"`
	Window
	// Down are the nodes killed or paused during the window.
	Down []string `json:"down,omitempty"`
	// Cut are the pairs of nodes that could not talk to each other during the window.
	Cut [][2]string `json:"cut,omitempty"`
	// Detail says how the target was chosen (for the reader).
	Detail string `json:"detail,omitempty"`
	// Forever: the nodes in Down never came back (kill-forever, a drained node after
	// its removal); the window lasts until the end of the history.
	Forever bool `json:"forever,omitempty"`
	// Continued: the event continues the fault before it (a drained node, stopped after
	// its drain) and is not counted as a fault of its own.
	Continued bool `json:"continued,omitempty"`
}

// LogStart is one replica's first offset as a node reported it during the run.
type LogStart struct {
	Topic string `json:"topic"`
	Shard uint32 `json:"shard"`
	Node  string `json:"node"`
	Start uint64 `json:"start"`
	// AtUnixMs is the wall time (unix ms) after the answer arrived.
	AtUnixMs int64 `json:"at_unix_ms"`
}

// TopicSpec describes one topic of a run.
type TopicSpec struct {
	Name   string `json:"name"`
	Shards uint32 `json:"shards"`
	// RetentionMs is the topic's time retention (0: none): records older than this may
	// be removed below a shard's log start, and are then expired, not lost.
	RetentionMs int64 `json:"retention_ms,omitempty"`
	// Replicas[i] names the nodes holding shard i's replicas. Unknown (nil), every node
	// of the History counts as a replica.
	Replicas [][]string `json:"replicas,omitempty"`
	// Consumers is how many consumers (ids 0..Consumers-1) tailed every shard from the
	// start; each must have read every acknowledged offset, in order.
	Consumers int `json:"consumers"`
}

// History is everything a run recorded: what the workload was told, what consumers saw,
// the faults, and the final logs of every replica.
type History struct {
	Seed uint64 `json:"seed"`
	// Nodes names the cluster's nodes.
	Nodes []string `json:"nodes,omitempty"`
	// Topics are the run's topics. Records of a topic not listed are checked as a topic
	// without retention, consumers or known placement.
	Topics []TopicSpec `json:"topics"`
	// Workload is the span producers ran in (ms since start).
	Workload Window `json:"workload"`
	// MaxUnavailableMs bounds how long a shard with a live, connected majority of its
	// replicas may stay unwritable; 0 does not check availability.
	MaxUnavailableMs int64 `json:"max_unavailable_ms"`
	// ReadDoneUnixMs is the wall time (unix ms) after the final logs were read: a record
	// can have expired only if its timestamp is older than this minus the retention.
	ReadDoneUnixMs int64 `json:"read_done_unix_ms"`
	// LogStarts are log starts seen during the run (topics with retention): what lies
	// below one must have been older than the retention when it was seen.
	LogStarts []LogStart   `json:"log_starts,omitempty"`
	Acks      []Ack        `json:"acks"`
	Failed    []Failed     `json:"failed"`
	Reads     []Read       `json:"reads"`
	Faults    []FaultEvent `json:"faults"`
	Logs      []ReplicaLog `json:"logs"`
	// Placements are the changes of shards' voting replicas seen during runs with
	// kill-forever or drain (sorted by time); before a shard's first, its TopicSpec
	// Replicas hold.
	Placements []Placement `json:"placements,omitempty"`
	// KillForever, Drain and Replication are set when the run had those faults: what
	// the kill-forever and the drain did, and the final replication check.
	KillForever *KillForeverResult `json:"kill_forever,omitempty"`
	Drain       *DrainResult       `json:"drain,omitempty"`
	Replication *ReplicationResult `json:"replication,omitempty"`
}

// TopicReport is the part of a Report about one topic.
type TopicReport struct {
	Name         string `json:"name"`
	Acknowledged int    `json:"acknowledged"`
	FinalRecords int    `json:"final_records"`
	Expired      int    `json:"expired"`
	// MaxShardUnavailableMs is the topic's worst shard (WorstShard): the longest time
	// from a send until the shard next acknowledged anything, minus the time in which
	// the shard had no live, connected majority.
	MaxShardUnavailableMs int64  `json:"max_shard_unavailable_ms"`
	WorstShard            uint32 `json:"worst_shard"`
	// ShardUnavailableMs is the same for every shard, by index.
	ShardUnavailableMs []int64 `json:"shard_unavailable_ms"`
}

// Report is the checker's verdict. Lost, Duplicated, Divergent, PhantomReads,
// OrderViolations, UnknownRecords and Altered are safety violations, ReadGaps a
// completeness violation, UnavailableShards an availability violation; the rest is
// information.
type Report struct {
	Seed         uint64 `json:"seed"`
	Acknowledged int    `json:"acknowledged"`
	// Indeterminate counts sends that reported an error; IndeterminateFound how many of
	// them are in the final log anyway (allowed: an error does not mean "not written").
	Indeterminate      int `json:"indeterminate"`
	IndeterminateFound int `json:"indeterminate_found"`
	Reads              int `json:"reads"`
	// FinalRecords counts records in the merged final log of all shards.
	FinalRecords int `json:"final_records"`
	// Lost: acknowledged records missing from the final log or not at their offset
	// (below a shard's log start only when too young to have expired, or the topic has
	// no retention).
	Lost int `json:"lost"`
	// Expired: acknowledged records below their shard's final log start, old enough for
	// the topic's retention to have removed them (not a violation).
	Expired int `json:"expired"`
	// Duplicated: values stored at more than one (shard, offset).
	Duplicated int `json:"duplicated"`
	// Divergent: (shard, offset) positions at which two replicas hold different records.
	Divergent int `json:"divergent"`
	// Altered: records (in a replica's final log or as a consumer read them) whose key,
	// headers or timestamp differ from what their producer sent.
	Altered int `json:"altered"`
	// PhantomReads: reads of a value at an offset that the final log holds differently.
	PhantomReads int `json:"phantom_reads"`
	// ReadGaps: (consumer, shard) pairs in which the consumer did not read every
	// offset in order up to the last acknowledged one (skipped, went back or stopped).
	ReadGaps int `json:"read_gaps"`
	// OrderViolations: acknowledged records of one producer in one shard out of sequence
	// order.
	OrderViolations int `json:"order_violations"`
	// OrderIndeterminate: like OrderViolations, but at least one of the two records was
	// reported failed to its producer (it may land anywhere, once): not counted as a
	// safety violation, reported so that it can be looked at.
	OrderIndeterminate int `json:"order_indeterminate"`
	// UnknownRecords: final-log records that no producer ever sent.
	UnknownRecords int `json:"unknown_records"`
	// LaggingReplicas: replicas that end before the longest replica of their shard
	// (not a safety violation: they had not caught up when read).
	LaggingReplicas int `json:"lagging_replicas"`
	// Faults counts injected faults per type.
	Faults map[string]int `json:"faults"`
	// MaxUnavailableMs is the worst shard of all topics (see TopicReport).
	MaxUnavailableMs int64 `json:"max_unavailable_ms"`
	// UnavailableBoundMs is the bound the availability check applied (0: none).
	UnavailableBoundMs int64 `json:"unavailable_bound_ms"`
	// UnavailableShards counts shards that stayed unwritable longer than the bound
	// while they had a live, connected majority.
	UnavailableShards int `json:"unavailable_shards"`
	// Unreplicated counts shards not fully replicated on live nodes (exactly the
	// replication factor, none on a gone node, no move in progress, a leader) within
	// the bound after the faults ended (runs with kill-forever or drain).
	Unreplicated int `json:"unreplicated"`
	// DrainFailed is 1 when the drain did not finish within its bound, or the drained
	// node could not be removed.
	DrainFailed int `json:"drain_failed"`
	// KillForever, Drain and Replication are the History's, for the reader.
	KillForever *KillForeverResult `json:"kill_forever,omitempty"`
	Drain       *DrainResult       `json:"drain,omitempty"`
	Replication *ReplicationResult `json:"replication,omitempty"`
	// Topics reports per topic.
	Topics []TopicReport `json:"topics"`
	// Examples holds the first few examples of each violation, by its JSON name.
	Examples map[string][]string `json:"examples,omitempty"`
	// Errors are harness problems (a replica that could not be read, a failed step):
	// they make the run inconclusive rather than failed.
	Errors []string `json:"errors,omitempty"`
}

// Violations returns the number of violations in r: safety, read completeness,
// availability and healing (replication, drain).
func (r *Report) Violations() int {
	return r.Lost + r.Duplicated + r.Divergent + r.Altered + r.PhantomReads + r.OrderViolations +
		r.UnknownRecords + r.ReadGaps + r.UnavailableShards + r.Unreplicated + r.DrainFailed
}

// Safe reports whether r found no violation.
func (r *Report) Safe() bool { return r.Violations() == 0 }
