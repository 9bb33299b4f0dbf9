package meta

import (
	"encoding/json"
	"errors"
	"shardlog/ids"
	"slices"
	"strings"
	"testing"
)

// testState returns a state with nodes 1..n registered in zones z0, z1, ...
func testState(t *testing.T, n int) *State {
	t.Helper()
	s := NewState()
	for i := 1; i <= n; i++ {
		r := s.Apply(uint64(i), register(Node{
			ID: ids.NodeID(i), ClientAddr: "127.0.0.1:7400", Zone: "z" + string(rune('0'+i-1)),
		}))
		if err := ResultError(r); err != nil {
			t.Fatalf("register node %d: %v", i, err)
		}
	}
	return s
}

// register returns the command that registers n as the node itself does:
// with its MetaVoter flag as given.
func register(n Node) Command {
	return Command{Op: OpRegisterNode, RegisterNode: &RegisterNode{Node: n}}
}

func candidates(nodes ...ids.NodeID) []ids.NodeID { return nodes }

func createCmd(spec TopicSpec, cands []ids.NodeID, l Limits) Command {
	return Command{Op: OpCreateTopic, CreateTopic: &CreateTopic{Spec: spec, Candidates: cands, Limits: l}}
}

func spec(name string, shards, rf uint32) TopicSpec {
	return TopicSpec{Name: name, Shards: shards, ReplicationFactor: rf}
}

func stateJSON(t *testing.T, s *State) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetaApplyRegisterNode(t *testing.T) {
	s := testState(t, 1)
	r := s.Apply(10, register(Node{ID: 1, ClientAddr: "h:1", RaftAddr: "h:2", GossipAddr: "h:3", Zone: "b", MetaVoter: true, JoinedIndex: 99}))
	if err := ResultError(r); err != nil {
		t.Fatal(err)
	}
	want := Node{ID: 1, ClientAddr: "h:1", RaftAddr: "h:2", GossipAddr: "h:3", Zone: "b", MetaVoter: true, JoinedIndex: 1, Num: 1}
	if got := *s.Nodes[1]; got != want {
		t.Fatalf("updated node = %+v, want %+v", got, want)
	}
	s.Apply(11, register(Node{ID: 7}))
	if s.Nodes[7].JoinedIndex != 11 || s.Index != 11 || s.Nodes[7].Num != 2 {
		t.Fatalf("new node joined at %d as number %d, state index %d", s.Nodes[7].JoinedIndex, s.Nodes[7].Num, s.Index)
	}
	before := stateJSON(t, s)
	r = s.Apply(12, register(Node{ID: 0}))
	if !errors.Is(ResultError(r), ErrInvalidArgument) {
		t.Fatalf("node 0: got %v", ResultError(r))
	}
	s.Index = 11
	if stateJSON(t, s) != before {
		t.Fatal("invalid register changed the state")
	}
}

func TestMetaApplyCreateTopic(t *testing.T) {
	tests := []struct {
		name    string
		setup   []Command
		cmd     Command
		code    Code
		wantMsg string // substring of the error message
	}{
		{name: "ok", cmd: createCmd(spec("orders", 4, 3), candidates(1, 2, 3), Limits{})},
		{name: "rf one on one of three", cmd: createCmd(spec("a", 2, 1), candidates(3), Limits{})},
		{name: "bad name", cmd: createCmd(spec("a b", 1, 1), candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: `"a b"`},
		{name: "empty name", cmd: createCmd(spec("", 1, 1), candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: "empty"},
		{name: "zero shards", cmd: createCmd(spec("a", 0, 1), candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: "shard count 0"},
		{name: "shards above limit", cmd: createCmd(spec("a", 9, 1), candidates(1), Limits{MaxShardsPerTopic: 8}), code: CodeInvalidArgument, wantMsg: "shard count 9 is outside 1..8"},
		{name: "zero rf", cmd: createCmd(spec("a", 1, 0), candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: "replication factor 0"},
		{name: "rf above limit", cmd: createCmd(spec("a", 1, 8), candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: "replication factor 8 is outside 1..7"},
		{name: "negative retention ms", cmd: createCmd(TopicSpec{Name: "a", Shards: 1, ReplicationFactor: 1, RetentionMs: -1}, candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: "retention_ms -1"},
		{name: "negative retention bytes", cmd: createCmd(TopicSpec{Name: "a", Shards: 1, ReplicationFactor: 1, RetentionBytes: -5}, candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: "retention_bytes -5"},
		{name: "bad compression", cmd: createCmd(TopicSpec{Name: "a", Shards: 1, ReplicationFactor: 1, Compression: "lz4"}, candidates(1), Limits{}), code: CodeInvalidArgument, wantMsg: `"lz4"`},
		{
			name:  "exists",
			setup: []Command{createCmd(spec("a", 1, 1), candidates(1), Limits{})},
			cmd:   createCmd(spec("a", 2, 1), candidates(1), Limits{}), code: CodeAlreadyExists, wantMsg: `topic "a" already exists`,
		},
		{
			name:  "topic limit",
			setup: []Command{createCmd(spec("a", 1, 1), candidates(1), Limits{})},
			cmd:   createCmd(spec("b", 1, 1), candidates(1), Limits{MaxTopics: 1}), code: CodeResourceExhausted, wantMsg: "maximum of 1 topics",
		},
		{name: "unregistered candidate", cmd: createCmd(spec("a", 1, 1), candidates(1, 42), Limits{}), code: CodeFailedPrecondition, wantMsg: "node 42 is not registered"},
		{name: "duplicate candidate", cmd: createCmd(spec("a", 1, 1), candidates(1, 1), Limits{}), code: CodeInvalidArgument, wantMsg: "listed twice"},
		{name: "rf above live nodes", cmd: createCmd(spec("a", 1, 3), candidates(1, 2), Limits{}), code: CodeFailedPrecondition, wantMsg: "replication factor 3 exceeds the 2 live nodes"},
		{name: "no candidates", cmd: createCmd(spec("a", 1, 1), nil, Limits{}), code: CodeFailedPrecondition, wantMsg: "exceeds the 0 live nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testState(t, 3)
			for i, c := range tt.setup {
				if err := ResultError(s.Apply(uint64(10+i), c)); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			before, prevIndex := stateJSON(t, s), s.Index
			r := s.Apply(100, tt.cmd)
			if s.Index != 100 {
				t.Fatalf("index = %d, want 100", s.Index)
			}
			if tt.code != CodeOK {
				var e *Error
				if err := ResultError(r); !errors.As(err, &e) || e.Code != tt.code || !strings.Contains(e.Msg, tt.wantMsg) {
					t.Fatalf("got %v, want %v containing %q", err, tt.code, tt.wantMsg)
				}
				s.Index = prevIndex
				if after := stateJSON(t, s); after != before {
					t.Fatalf("failed command changed the state:\n%s\n%s", before, after)
				}
				return
			}
			topic, err := ResultTopic(r)
			if err != nil {
				t.Fatalf("ResultTopic: %v", err)
			}
			checkCreated(t, s, topic, tt.cmd.CreateTopic)
		})
	}
}

// checkCreated checks a created topic against its command and the state.
func checkCreated(t *testing.T, s *State, topic *Topic, ct *CreateTopic) {
	t.Helper()
	if topic.CreatedIndex != s.Index || topic.Compression != CompressionNone || len(topic.ShardList) != int(ct.Spec.Shards) {
		t.Fatalf("topic %+v", topic)
	}
	if got := s.Topics[ct.Spec.Name]; stateJSONOf(t, got) != stateJSONOf(t, topic) {
		t.Fatalf("state topic %+v differs from result %+v", got, topic)
	}
	allowed := map[ids.NodeID]bool{}
	for _, id := range ct.Candidates {
		allowed[id] = true
	}
	for i, sh := range topic.ShardList {
		if sh.Index != uint32(i) || sh.ShardID < FirstDataShardID || len(sh.Replicas) != int(ct.Spec.ReplicationFactor) {
			t.Fatalf("shard %d: %+v", i, sh)
		}
		for _, r := range sh.Replicas {
			if !allowed[r.NodeID] || r.ReplicaID == 0 {
				t.Fatalf("shard %d: replica %+v", i, r)
			}
		}
	}
}

func stateJSONOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetaApplyCreateTopicAllocatesIDsInOrder(t *testing.T) {
	s := testState(t, 3)
	topic, err := ResultTopic(s.Apply(5, createCmd(spec("t", 2, 3), candidates(3, 2, 1), Limits{})))
	if err != nil {
		t.Fatal(err)
	}
	want := []Shard{
		{Index: 0, ShardID: 16, Replicas: []Replica{{ReplicaID: 1, NodeID: 1}, {ReplicaID: 2, NodeID: 2}, {ReplicaID: 3, NodeID: 3}}},
		{Index: 1, ShardID: 17, Replicas: []Replica{{ReplicaID: 4, NodeID: 2}, {ReplicaID: 5, NodeID: 1}, {ReplicaID: 6, NodeID: 3}}},
	}
	if stateJSONOf(t, topic.ShardList) != stateJSONOf(t, want) {
		t.Fatalf("shards = %+v, want %+v", topic.ShardList, want)
	}
	if s.NextShardID != 18 || s.NextReplicaID != 7 {
		t.Fatalf("counters %d %d", s.NextShardID, s.NextReplicaID)
	}
}

func TestMetaApplyDeleteTopic(t *testing.T) {
	s := testState(t, 1)
	if err := ResultError(s.Apply(5, createCmd(spec("a", 1, 1), candidates(1), Limits{}))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		topic string
		code  Code
	}{
		{"deletes", "a", CodeOK},
		{"gone after delete", "a", CodeNotFound},
		{"never existed", "zzz", CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Apply(s.Index+1, Command{Op: OpDeleteTopic, DeleteTopic: &DeleteTopic{Name: tt.topic}})
			if Code(r.Value) != tt.code {
				t.Fatalf("code %v (%v), want %v", Code(r.Value), ResultError(r), tt.code)
			}
			if tt.code == CodeNotFound && !errors.Is(ResultError(r), ErrNotFound) {
				t.Fatalf("not ErrNotFound: %v", ResultError(r))
			}
			if tt.code == CodeOK {
				if topic, err := ResultTopic(r); err != nil || topic.Name != tt.topic {
					t.Fatalf("deleted topic %v, %v", topic, err)
				}
			}
			if _, ok := s.Topics[tt.topic]; ok {
				t.Fatal("topic still present")
			}
		})
	}
}

func TestMetaApplyMalformedCommands(t *testing.T) {
	tests := []struct {
		name string
		cmd  []byte
	}{
		{"not json", []byte("{")},
		{"empty", nil},
		{"unknown op", []byte(`{"op":"explode"}`)},
		{"missing payload", []byte(`{"op":"create_topic"}`)},
		{"wrong payload", []byte(`{"op":"delete_topic","register_node":{"id":1}}`)},
		{"two payloads", []byte(`{"op":"delete_topic","delete_topic":{"name":"a"},"register_node":{"id":1}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testState(t, 1)
			before := stateJSON(t, s)
			r := s.ApplyBytes(1, tt.cmd)
			if !errors.Is(ResultError(r), ErrInvalidArgument) {
				t.Fatalf("got %v", ResultError(r))
			}
			if _, err := Decode(tt.cmd); !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("Decode: %v", err)
			}
			if stateJSON(t, s) != before {
				t.Fatal("state changed")
			}
		})
	}
	// Apply with a hand-built command missing its payload.
	s := testState(t, 1)
	if r := s.Apply(9, Command{Op: OpCreateTopic}); !errors.Is(ResultError(r), ErrInvalidArgument) {
		t.Fatalf("got %v", ResultError(r))
	}
}

func TestMetaIDsNeverReusedAfterDelete(t *testing.T) {
	s := testState(t, 2)
	seenShards, seenReplicas := map[ids.ShardID]bool{}, map[ids.ReplicaID]bool{}
	for i := range 5 {
		topic, err := ResultTopic(s.Apply(uint64(10+2*i), createCmd(spec("t", 3, 2), candidates(1, 2), Limits{})))
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range topic.ShardList {
			if seenShards[sh.ShardID] {
				t.Fatalf("round %d: ShardID %d reused", i, sh.ShardID)
			}
			seenShards[sh.ShardID] = true
			for _, r := range sh.Replicas {
				if seenReplicas[r.ReplicaID] {
					t.Fatalf("round %d: ReplicaID %d reused", i, r.ReplicaID)
				}
				seenReplicas[r.ReplicaID] = true
			}
		}
		if err := ResultError(s.Apply(uint64(11+2*i), Command{Op: OpDeleteTopic, DeleteTopic: &DeleteTopic{Name: "t"}})); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetaApplyUsesRegisteredZones(t *testing.T) {
	s := NewState()
	for i, z := range []string{"a", "a", "b"} {
		s.Apply(uint64(i+1), register(Node{ID: ids.NodeID(i + 1), Zone: z}))
	}
	// An entry in the old candidate form claims three zones; the registered
	// ones are two, so each shard must span both registered zones.
	old := `{"op":"create_topic","create_topic":{"spec":{"name":"t","shards":6,"replication_factor":2},` +
		`"candidates":[{"ID":1,"Zone":"x"},{"ID":2,"Zone":"y"},{"ID":3,"Zone":"z"}],"limits":{}}}`
	topic, err := ResultTopic(s.ApplyBytes(9, []byte(old)))
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range topic.ShardList {
		ids := []ids.NodeID{sh.Replicas[0].NodeID, sh.Replicas[1].NodeID}
		if !slices.Contains(ids, 3) {
			t.Fatalf("shard %d on %v: both replicas in zone a", sh.Index, ids)
		}
	}
}

func TestMetaResultErrors(t *testing.T) {
	if err := ResultError(Result{}); err != nil {
		t.Fatalf("success: %v", err)
	}
	if _, err := ResultTopic(Result{}); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("empty success: %v", err)
	}
	err := ResultError(Result{Value: uint64(CodeFailedPrecondition), Data: []byte("replication factor 3 exceeds the 2 live nodes")})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeFailedPrecondition || !errors.Is(err, ErrFailedPrecondition) || errors.Is(err, ErrNotFound) {
		t.Fatalf("got %#v", err)
	}
	if err.Error() != "meta: replication factor 3 exceeds the 2 live nodes" {
		t.Fatalf("message %q", err.Error())
	}
	if _, err := ResultTopic(Result{Value: uint64(CodeNotFound)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ResultTopic error: %v", err)
	}
	if s := Code(77).String(); s != "Code(77)" {
		t.Fatalf("unknown code string %q", s)
	}
}

// join returns the command a meta leader proposes for a joining node.
func join(id ids.NodeID, metaVoter bool, metaVoters int) Command {
	return Command{Op: OpRegisterNode, RegisterNode: &RegisterNode{
		Node:       Node{ID: id, ClientAddr: "h:1", RaftAddr: "h:2", GossipAddr: "h:3", MetaVoter: metaVoter},
		MetaVoters: metaVoters,
	}}
}

// voterState returns a state with nodes 1..voters as meta voters and the
// next nonVoters nodes as non-voting members.
func voterState(t *testing.T, voters, nonVoters int) *State {
	t.Helper()
	s := NewState()
	for i := 1; i <= voters+nonVoters; i++ {
		if err := ResultError(s.Apply(uint64(i), register(Node{ID: ids.NodeID(i), MetaVoter: i <= voters}))); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestMetaApplyJoinChoosesMetaVoter(t *testing.T) {
	tests := []struct {
		name              string
		voters, nonVoters int
		cmd               Command
		wantVoter         bool
		wantJoined        uint64
	}{
		{name: "first node votes", cmd: join(9, false, 3), wantVoter: true, wantJoined: 100},
		{name: "votes while fewer than wanted", voters: 2, cmd: join(9, false, 3), wantVoter: true, wantJoined: 100},
		{name: "non-voting once wanted reached", voters: 3, cmd: join(9, false, 3), wantJoined: 100},
		{name: "non-voters do not count", voters: 2, nonVoters: 4, cmd: join(9, false, 3), wantVoter: true, wantJoined: 100},
		{name: "proposer's flag is ignored", voters: 3, cmd: join(9, true, 3), wantJoined: 100},
		{name: "one wanted voter", voters: 1, nonVoters: 1, cmd: join(9, true, 1), wantJoined: 100},
		{name: "registered voter keeps its vote above wanted", voters: 5, cmd: join(2, false, 3), wantVoter: true, wantJoined: 2},
		{name: "registered non-voter stays non-voting below wanted", voters: 1, nonVoters: 1, cmd: join(2, true, 3), wantJoined: 2},
		{name: "without meta_voters the flag is applied as given", voters: 3, cmd: join(9, true, 0), wantVoter: true, wantJoined: 100},
		{name: "without meta_voters a voter can be demoted as before", voters: 3, cmd: join(2, false, 0), wantJoined: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := voterState(t, tt.voters, tt.nonVoters)
			r := s.Apply(100, tt.cmd)
			got, err := ResultNode(r)
			if err != nil {
				t.Fatalf("ResultNode: %v", err)
			}
			id := tt.cmd.RegisterNode.ID
			if got.MetaVoter != tt.wantVoter || got.JoinedIndex != tt.wantJoined || got.ID != id {
				t.Fatalf("result node %+v, want voter %v joined at %d", got, tt.wantVoter, tt.wantJoined)
			}
			if *s.Nodes[id] != *got || s.Nodes[id].ClientAddr != "h:1" {
				t.Fatalf("state node %+v differs from result %+v", s.Nodes[id], got)
			}
		})
	}
}

func TestMetaApplyConcurrentJoinsMakeOneFourthVoter(t *testing.T) {
	s := voterState(t, 2, 0)
	// Both leaders saw two voters; the log orders their proposals.
	a, err := ResultNode(s.Apply(10, join(30, true, 3)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ResultNode(s.Apply(11, join(31, true, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if !a.MetaVoter || b.MetaVoter || s.metaVoters() != 3 {
		t.Fatalf("first joiner voter %v, second %v, %d voters; want true, false, 3", a.MetaVoter, b.MetaVoter, s.metaVoters())
	}
	// A retried join of the first node gets the same answer.
	again, err := ResultNode(s.Apply(12, join(30, false, 3)))
	if err != nil || !again.MetaVoter || again.JoinedIndex != 10 {
		t.Fatalf("retried join: %+v, %v", again, err)
	}
}

func TestMetaApplyOldRegisterNodeEntry(t *testing.T) {
	// RegisterNode entries as written before meta_voters existed: the flag the
	// proposer chose is applied as given, even above three voters.
	tests := []struct {
		name      string
		entry     string
		wantVoter bool
	}{
		{
			name:      "voter",
			entry:     `{"op":"register_node","register_node":{"id":9,"client_addr":"h:1","raft_addr":"h:2","gossip_addr":"h:3","zone":"a","meta_voter":true,"joined_index":0}}`,
			wantVoter: true,
		},
		{
			name:  "non-voter",
			entry: `{"op":"register_node","register_node":{"id":9,"client_addr":"h:1","raft_addr":"h:2","gossip_addr":"h:3","zone":"a","meta_voter":false,"joined_index":0}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := voterState(t, 3, 0)
			c, err := Decode([]byte(tt.entry))
			if err != nil {
				t.Fatal(err)
			}
			if c.RegisterNode.MetaVoters != 0 {
				t.Fatalf("old entry decoded with meta_voters %d", c.RegisterNode.MetaVoters)
			}
			if err := ResultError(s.ApplyBytes(50, []byte(tt.entry))); err != nil {
				t.Fatal(err)
			}
			want := Node{ID: 9, ClientAddr: "h:1", RaftAddr: "h:2", GossipAddr: "h:3", Zone: "a", MetaVoter: tt.wantVoter, JoinedIndex: 50, Num: 4}
			if *s.Nodes[9] != want {
				t.Fatalf("node %+v, want %+v", *s.Nodes[9], want)
			}
		})
	}
}

func TestMetaApplyRegisterNodeNegativeMetaVotersFails(t *testing.T) {
	s := voterState(t, 1, 0)
	before := stateJSON(t, s)
	r := s.Apply(5, join(9, false, -1))
	if !errors.Is(ResultError(r), ErrInvalidArgument) {
		t.Fatalf("got %v", ResultError(r))
	}
	s.Index = 1
	if stateJSON(t, s) != before {
		t.Fatal("invalid register changed the state")
	}
	if _, err := ResultNode(Result{}); !errors.Is(err, ErrNoNode) {
		t.Fatalf("empty success: %v", err)
	}
}
