package chaos

import (
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"

	"shardlog/batch"
)

// HeaderKey is the name of the header every workload record carries.
const HeaderKey = "h"

// Header is one record header as the checker compares it.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Record is the content of one record as a log holds it or a consumer read it: value,
// key, headers and timestamp. Offsets live beside it (Read, ReplicaLog).
type Record struct {
	Value   string   `json:"value"`
	Key     string   `json:"key,omitempty"`
	Headers []Header `json:"headers,omitempty"`
	// TsMs is the record's timestamp in unix milliseconds.
	TsMs int64 `json:"ts_ms,omitempty"`
}

// Expect returns the record producer p sends as its record seq with timestamp tsMs (the
// producer picks the time; everything else follows from p and seq): value "p<p>-<seq>",
// key "k<p>-<seq>" and one header h = "<p>-<seq>-<crc>", crc the CRC-32 of value, key and
// timestamp, so that any changed field is seen.
func Expect(p int, seq uint64, tsMs int64) Record {
	v := Value(p, seq)
	k := fmt.Sprintf("k%d-%d", p, seq)
	crc := crc32.ChecksumIEEE([]byte(v + "|" + k + "|" + strconv.FormatInt(tsMs, 10)))
	return Record{Value: v, Key: k, Headers: []Header{{HeaderKey, fmt.Sprintf("%d-%d-%08x", p, seq, crc)}}, TsMs: tsMs}
}

// expectOf returns the record a producer sent with value v at timestamp tsMs, or false
// when v is no workload value.
func expectOf(v string, tsMs int64) (Record, bool) {
	p, seq, ok := ParseValue(v)
	if !ok {
		return Record{}, false
	}
	return Expect(p, seq, tsMs), true
}

// Equal reports whether r and o hold the same value, key, headers (in order) and time.
func (r Record) Equal(o Record) bool {
	return r.Value == o.Value && r.Key == o.Key && r.TsMs == o.TsMs && slices.Equal(r.Headers, o.Headers)
}

// id is a canonical encoding of the whole record, for counting equal records.
func (r Record) id() string {
	var b strings.Builder
	b.WriteString(strconv.Quote(r.Value))
	b.WriteString(" key=" + strconv.Quote(r.Key))
	b.WriteString(" ts=" + strconv.FormatInt(r.TsMs, 10))
	for _, h := range r.Headers {
		b.WriteString(" " + strconv.Quote(h.Key) + "=" + strconv.Quote(h.Value))
	}
	return b.String()
}

// diff names the fields in which got differs from want ("" when equal).
func diff(want, got Record) string {
	var parts []string
	if got.Value != want.Value {
		parts = append(parts, fmt.Sprintf("value %q, want %q", got.Value, want.Value))
	}
	if got.Key != want.Key {
		parts = append(parts, fmt.Sprintf("key %q, want %q", got.Key, want.Key))
	}
	if !slices.Equal(got.Headers, want.Headers) {
		parts = append(parts, fmt.Sprintf("headers %v, want %v", got.Headers, want.Headers))
	}
	if got.TsMs != want.TsMs {
		parts = append(parts, fmt.Sprintf("timestamp %d, want %d", got.TsMs, want.TsMs))
	}
	return strings.Join(parts, "; ")
}

// fromSegment converts a stored record.
func fromSegment(r batch.Record) Record {
	out := Record{Value: string(r.Value), Key: string(r.Key), TsMs: r.Timestamp}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, Header{h.Key, string(h.Value)})
	}
	return out
}

// segmentHeaders converts headers for the client.
func segmentHeaders(hs []Header) []batch.Header {
	out := make([]batch.Header, len(hs))
	for i, h := range hs {
		out[i] = batch.Header{Key: h.Key, Value: []byte(h.Value)}
	}
	return out
}
