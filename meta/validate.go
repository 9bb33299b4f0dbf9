package meta

import "fmt"

// MaxTopicNameLen is the longest topic name in bytes.
const MaxTopicNameLen = 200

// Compression codecs accepted in TopicSpec.Compression.
const (
	// CompressionNone stores batches uncompressed.
	CompressionNone = "none"
	// CompressionS2 compresses batches with S2.
	CompressionS2 = "s2"
	// CompressionZstd compresses batches with zstd.
	CompressionZstd = "zstd"
)

// Limits bounds what CreateTopic accepts. The proposer puts its configured
// limits into each command, so the apply stays a function of the log. A zero
// field means its default.
type Limits struct {
	// MaxShardsPerTopic caps TopicSpec.Shards; default 4096.
	MaxShardsPerTopic uint32 `json:"max_shards_per_topic"`
	// MaxReplicationFactor caps TopicSpec.ReplicationFactor; default 7.
	MaxReplicationFactor uint32 `json:"max_replication_factor"`
	// MaxTopics caps the number of topics in the cluster; default 100000.
	MaxTopics int `json:"max_topics"`
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxShardsPerTopic: 4096, MaxReplicationFactor: 7, MaxTopics: 100000}
}

// WithDefaults returns l with every zero (or negative) field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxShardsPerTopic == 0 {
		l.MaxShardsPerTopic = d.MaxShardsPerTopic
	}
	if l.MaxReplicationFactor == 0 {
		l.MaxReplicationFactor = d.MaxReplicationFactor
	}
	if l.MaxTopics <= 0 {
		l.MaxTopics = d.MaxTopics
	}
	return l
}

// ValidateTopicName checks that name matches [A-Za-z0-9._-]{1,200} and is not
// "." or "..". The error is an *Error with CodeInvalidArgument.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return errorf(CodeInvalidArgument, "topic name is empty")
	case len(name) > MaxTopicNameLen:
		return errorf(CodeInvalidArgument, "topic name %.20q... is %d bytes long, more than %d", name, len(name), MaxTopicNameLen)
	case name == "." || name == "..":
		return errorf(CodeInvalidArgument, "topic name %q is reserved", name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return errorf(CodeInvalidArgument, "topic name %q has invalid byte %q at offset %d: allowed are A-Z a-z 0-9 . _ -", name, name[i], i)
		}
	}
	return nil
}

// nameByte reports whether b may appear in a topic name.
func nameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '.' || b == '_' || b == '-'
}

// ValidateSpec checks a topic spec against the limits (zero fields of l mean
// their defaults): the name, shards in 1..MaxShardsPerTopic, replication
// factor in 1..MaxReplicationFactor, non-negative retention and a known
// compression codec ("" allowed, meaning none). The error is an *Error with
// CodeInvalidArgument.
func ValidateSpec(spec TopicSpec, l Limits) error {
	l = l.WithDefaults()
	if err := ValidateTopicName(spec.Name); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return errorf(CodeInvalidArgument, "topic %q: %s", spec.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case spec.Shards < 1 || spec.Shards > l.MaxShardsPerTopic:
		return bad("shard count %d is outside 1..%d", spec.Shards, l.MaxShardsPerTopic)
	case spec.ReplicationFactor < 1 || spec.ReplicationFactor > l.MaxReplicationFactor:
		return bad("replication factor %d is outside 1..%d", spec.ReplicationFactor, l.MaxReplicationFactor)
	case spec.RetentionMs < 0:
		return bad("retention_ms %d is negative", spec.RetentionMs)
	case spec.RetentionBytes < 0:
		return bad("retention_bytes %d is negative", spec.RetentionBytes)
	}
	switch spec.Compression {
	case "", CompressionNone, CompressionS2, CompressionZstd:
		return nil
	default:
		return bad("compression %q is not one of none, s2, zstd", spec.Compression)
	}
}
