package meta

import (
	"shardlog/ids"
	"sync"
	"testing"

	"github.com/lni/dragonboat/v4/statemachine"
)

func entry(index uint64, cmd []byte) statemachine.Entry {
	return statemachine.Entry{Index: index, Cmd: cmd}
}

func TestMetaStateMachineUpdateAndLookup(t *testing.T) {
	var applied []uint64
	sm := NewStateMachine(func(i uint64) { applied = append(applied, i) })(uint64(ShardID), 1)
	b, err := Encode(register(Node{ID: 5}))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := sm.Update(entry(3, b)); err != nil || ResultError(r) != nil {
		t.Fatalf("Update: %v %v", r, err)
	}
	if r, err := sm.Update(entry(4, []byte("junk"))); err != nil || ResultError(r) == nil {
		t.Fatalf("junk entry: %v %v", r, err)
	}
	v, err := sm.Lookup("anything")
	if err != nil {
		t.Fatal(err)
	}
	s := v.(*State)
	if s.Index != 4 || s.Nodes[5] == nil || len(applied) != 2 || applied[1] != 4 {
		t.Fatalf("state %+v applied %v", s, applied)
	}
	s.Nodes[5].Zone = "mine"
	v2, _ := sm.Lookup(nil)
	if v2.(*State).Nodes[5].Zone != "" {
		t.Fatal("Lookup result shares memory with the state machine")
	}
}

func TestMetaStateMachineConcurrentLookup(t *testing.T) {
	sm := NewStateMachine(nil)(uint64(ShardID), 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			v, _ := sm.Lookup(nil)
			_ = v.(*State).SortedTopics()
		}
	}()
	for i := range 200 {
		b, _ := Encode(register(Node{ID: ids.NodeID(i + 1)}))
		if _, err := sm.Update(entry(uint64(i+1), b)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
