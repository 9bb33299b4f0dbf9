package meta

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"shardlog/ids"
	"strings"
	"testing"
)

func TestMetaValidateTopicName(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		wantErr string // substring; "" means valid
	}{
		{"simple", "orders", ""},
		{"all classes", "A-z_0.9", ""},
		{"max length", strings.Repeat("x", 200), ""},
		{"empty", "", "empty"},
		{"too long", strings.Repeat("x", 201), "201 bytes"},
		{"space", "a b", `invalid byte ' ' at offset 1`},
		{"slash", "a/b", `'/'`},
		{"unicode", "ü", "offset 0"},
		{"dot", ".", "reserved"},
		{"dot dot", "..", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopicName(tt.topic)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMetaStateQueries(t *testing.T) {
	s := testState(t, 3)
	for i, name := range []string{"b", "a"} {
		if err := ResultError(s.Apply(uint64(10+i), createCmd(spec(name, 2, 2), candidates(1, 2, 3), Limits{}))); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.SortedTopics(); len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("SortedTopics %v", got)
	}
	if got := s.SortedNodes(); len(got) != 3 || got[0].ID != 1 || got[2].ID != 3 {
		t.Fatalf("SortedNodes %v", got)
	}
	total := 0
	for id := ids.NodeID(1); id <= 3; id++ {
		refs := s.ShardsOnNode(id)
		total += len(refs)
		for i, ref := range refs {
			if i > 0 && (refs[i-1].Topic > ref.Topic || refs[i-1].Topic == ref.Topic && refs[i-1].Shard.Index >= ref.Shard.Index) {
				t.Fatalf("node %d: refs out of order: %+v", id, refs)
			}
			found := false
			for _, r := range ref.Shard.Replicas {
				found = found || r.NodeID == id && r.ReplicaID == ref.ReplicaID
			}
			if !found {
				t.Fatalf("node %d: ref %+v does not hold its replica", id, ref)
			}
			topic, sh, ok := s.ShardByID(ref.Shard.ShardID)
			if !ok || topic.Name != ref.Topic || sh.Index != ref.Shard.Index {
				t.Fatalf("ShardByID(%d) = %v %+v %v", ref.Shard.ShardID, topic, sh, ok)
			}
		}
	}
	if total != 8 {
		t.Fatalf("replicas on nodes = %d, want 8", total)
	}
	if refs := s.ShardsOnNode(99); len(refs) != 0 {
		t.Fatalf("unknown node has %v", refs)
	}
	if _, _, ok := s.ShardByID(1); ok {
		t.Fatal("meta shard found among topics")
	}
}

func TestMetaCloneIsDeep(t *testing.T) {
	s := testState(t, 2)
	s.Apply(5, createCmd(spec("a", 1, 2), candidates(1, 2), Limits{}))
	want := stateJSON(t, s)
	c := s.Clone()
	c.Nodes[1].Zone = "changed"
	c.Topics["a"].ShardList[0].Replicas[0].NodeID = 42
	c.Topics["a"].Name = "x"
	delete(c.Nodes, 2)
	c.Apply(6, createCmd(spec("b", 1, 1), candidates(1), Limits{}))
	if got := stateJSON(t, s); got != want {
		t.Fatalf("changing the clone changed the original:\n%s\n%s", want, got)
	}
}

// randomLog draws a command log mixing valid and invalid commands.
func randomLog(r *rand.Rand, n int) []Command {
	var log []Command
	for range n {
		var c Command
		switch r.IntN(8) {
		case 0:
			c = Command{Op: OpRegisterNode, RegisterNode: &RegisterNode{Node: Node{
				ID: ids.NodeID(r.IntN(6)), Zone: fmt.Sprintf("z%d", r.IntN(3)), MetaVoter: r.IntN(2) == 0,
				ClientAddr: fmt.Sprintf("127.0.0.1:%d", 7400+r.IntN(10)),
			}, MetaVoters: r.IntN(5) - 1}}
		case 1, 2:
			var cands []ids.NodeID
			for _, i := range r.Perm(6)[:r.IntN(6)] {
				cands = append(cands, ids.NodeID(i))
			}
			c = createCmd(TopicSpec{
				Name: fmt.Sprintf("t%d", r.IntN(8)), Shards: uint32(r.IntN(6)),
				ReplicationFactor: uint32(r.IntN(4)), RetentionMs: int64(r.IntN(3) - 1),
				Compression: []string{"", "none", "s2", "zstd", "lz4"}[r.IntN(5)],
			}, cands, Limits{MaxTopics: 6})
		case 3:
			c = Command{Op: OpDeleteTopic, DeleteTopic: &DeleteTopic{Name: fmt.Sprintf("t%d", r.IntN(8))}}
		case 4, 5:
			c = randomMoveCommand(r)
		case 6:
			c = randomNodeCommand(r)
		default:
			c = Command{Op: "bogus"}
		}
		log = append(log, c)
	}
	return log
}

// randomMoveCommand draws a move command for shards 16..31 and nodes 0..5.
func randomMoveCommand(r *rand.Rand) Command {
	shard := ids.ShardID(16 + r.IntN(16))
	switch r.IntN(3) {
	case 0:
		return Command{Op: OpStartMove, StartMove: &StartMove{ShardID: shard,
			From: ids.NodeID(r.IntN(6)), To: ids.NodeID(r.IntN(6)), Reason: "dead"}}
	case 1:
		phases := []MovePhase{PhaseCatchingUp, PhasePromoted, PhaseDone, PhaseAborted, "bogus"}
		return Command{Op: OpAdvanceMove, AdvanceMove: &AdvanceMove{ShardID: shard,
			ToReplica: ids.ReplicaID(r.IntN(60)), Phase: phases[r.IntN(len(phases))]}}
	default:
		return Command{Op: OpSetPreferredLeader, SetPreferredLeader: &SetPreferredLeader{ShardID: shard, Node: ids.NodeID(r.IntN(6))}}
	}
}

// randomNodeCommand draws a drain, removal or meta role change of nodes 0..5.
func randomNodeCommand(r *rand.Rand) Command {
	id := ids.NodeID(r.IntN(6))
	switch r.IntN(10) {
	case 0, 1, 2, 3:
		return Command{Op: OpSetNodeDraining, SetNodeDraining: &SetNodeDraining{Node: id, Draining: r.IntN(2) == 0}}
	case 4:
		return Command{Op: OpRemoveNode, RemoveNode: &RemoveNode{Node: id}}
	default:
		return Command{Op: OpSetMetaVoter, SetMetaVoter: &SetMetaVoter{Node: id, Voter: r.IntN(2) == 0}}
	}
}

func TestMetaReplayIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		log := randomLog(r, 200)
		a, b := NewState(), NewState()
		var resultsA, resultsB []Result
		for i, c := range log {
			resultsA = append(resultsA, a.Apply(uint64(i+1), c))
			// b replays the log from its encoding, as followers do.
			enc, err := Encode(c)
			if err != nil {
				enc = []byte(`{"op":"bogus"}`)
			}
			resultsB = append(resultsB, b.ApplyBytes(uint64(i+1), enc))
		}
		if ja, jb := stateJSON(t, a), stateJSON(t, b); ja != jb {
			t.Fatalf("round %d: states differ:\n%s\n%s", round, ja, jb)
		}
		if !reflect.DeepEqual(resultsA, resultsB) {
			t.Fatalf("round %d: results differ", round)
		}
	}
}

func TestMetaEncodeDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range randomLog(r, 100) {
		b, err := Encode(c)
		if c.Op == "bogus" {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("Encode(bogus) = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip of %s: %+v, %v", b, got, err)
		}
	}
}

func FuzzMetaDecode(f *testing.F) {
	for _, c := range randomLog(rand.New(rand.NewPCG(7, 8)), 20) {
		if b, err := Encode(c); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"op":"create_topic","create_topic":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(c)
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-decode: %+v, %v", again, err)
		}
		NewState().Apply(1, c) // must not panic
	})
}

func TestMetaSnapshotRoundTrip(t *testing.T) {
	sm := NewStateMachine(nil)(uint64(ShardID), 1).(*StateMachine)
	for i, c := range randomLog(rand.New(rand.NewPCG(3, 4)), 300) {
		b, err := Encode(c)
		if err != nil {
			continue
		}
		if _, err := sm.Update(entry(uint64(i+1), b)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := sm.SaveSnapshot(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	fresh := NewStateMachine(nil)(uint64(ShardID), 2).(*StateMachine)
	if err := fresh.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil, nil); err != nil {
		t.Fatal(err)
	}
	want, _ := sm.Lookup(nil)
	got, _ := fresh.Lookup(nil)
	if stateJSON(t, got.(*State)) != stateJSON(t, want.(*State)) || !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered state differs:\n%s\n%s", stateJSON(t, got.(*State)), stateJSON(t, want.(*State)))
	}
	if len(want.(*State).Topics) == 0 || len(want.(*State).Moves) == 0 || len(want.(*State).Removed) == 0 {
		t.Fatal("log left no topics, moves or removed nodes; test is vacuous")
	}
	if err := fresh.RecoverFromSnapshot(strings.NewReader("{not json"), nil, nil); err == nil {
		t.Fatal("recovered from garbage")
	}
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}
}
