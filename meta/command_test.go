package meta

import (
	"errors"
	"shardlog/ids"
	"slices"
	"strings"
	"testing"
)

// oldCreateTopic is a CreateTopic entry as the code before Candidates became
// node IDs wrote it to the meta log: placement.Node objects without JSON tags.
const oldCreateTopic = `{"op":"create_topic","create_topic":{"spec":{"name":"orders","shards":4,` +
	`"replication_factor":2,"retention_ms":0,"retention_bytes":0,"compression":""},` +
	`"candidates":[{"ID":3,"Zone":"z2"},{"ID":1,"Zone":"z0"},{"ID":2,"Zone":"z1"}],` +
	`"limits":{"max_shards_per_topic":0,"max_replication_factor":0,"max_topics":0}}}`

func TestMetaCreateTopicOldCandidatesDecode(t *testing.T) {
	c, err := Decode([]byte(oldCreateTopic))
	if err != nil {
		t.Fatal(err)
	}
	if want := []ids.NodeID{3, 1, 2}; !slices.Equal(c.CreateTopic.Candidates, want) {
		t.Fatalf("candidates %v, want %v", c.CreateTopic.Candidates, want)
	}
	if c.CreateTopic.Spec != spec("orders", 4, 2) || c.CreateTopic.Limits != (Limits{}) {
		t.Fatalf("decoded %+v", c.CreateTopic)
	}
}

func TestMetaCreateTopicOldCandidatesApplyAsNew(t *testing.T) {
	fromOld, fromNew := testState(t, 3), testState(t, 3)
	rOld := fromOld.ApplyBytes(10, []byte(oldCreateTopic))
	b, err := Encode(createCmd(spec("orders", 4, 2), candidates(3, 1, 2), Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	rNew := fromNew.ApplyBytes(10, b)
	if err := ResultError(rOld); err != nil {
		t.Fatalf("old entry: %v", err)
	}
	if string(rOld.Data) != string(rNew.Data) || stateJSON(t, fromOld) != stateJSON(t, fromNew) {
		t.Fatalf("old entry applied differently:\n%s\n%s", stateJSON(t, fromOld), stateJSON(t, fromNew))
	}
}

func TestMetaCreateTopicCandidatesRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		cands []ids.NodeID
	}{
		{"none", nil},
		{"empty", []ids.NodeID{}},
		{"ids", []ids.NodeID{7, 1, 1<<64 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := createCmd(spec("a", 1, 1), tt.cands, Limits{MaxTopics: 3})
			b, err := Encode(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Decode(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if stateJSONOf(t, out) != stateJSONOf(t, in) || (tt.cands == nil) != (out.CreateTopic.Candidates == nil) {
				t.Fatalf("round trip of %s gave %+v", b, out.CreateTopic)
			}
		})
	}
	b, _ := Encode(createCmd(spec("a", 1, 1), candidates(5, 6), Limits{}))
	if want := `"candidates":[5,6]`; !strings.Contains(string(b), want) {
		t.Fatalf("encoding %s lacks %s", b, want)
	}
}

func TestMetaCreateTopicBadCandidatesFail(t *testing.T) {
	for _, cands := range []string{`"x"`, `["x"]`, `[{"ID":"x"}]`, `[-1]`, `{"ID":1}`} {
		b := `{"op":"create_topic","create_topic":{"spec":{"name":"a","shards":1,"replication_factor":1},"candidates":` + cands + `}}`
		if _, err := Decode([]byte(b)); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("candidates %s: got %v, want ErrInvalidCommand", cands, err)
		}
	}
}
