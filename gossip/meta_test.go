package gossip

import (
	"shardlog/ids"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		meta    NodeMeta
		leaving bool
	}{
		{name: "empty", meta: NodeMeta{}},
		{name: "full", meta: NodeMeta{ClientAddr: "10.0.0.1:7400", Zone: "eu-west-1a"}},
		{name: "leaving", meta: NodeMeta{ClientAddr: "[::1]:7400"}, leaving: true},
		{name: "unicode", meta: NodeMeta{Zone: "zone-é\"\\"}},
		{name: "disk full", meta: NodeMeta{ClientAddr: "h:1", DiskFull: true, DiskFreeBytes: 63 << 20, MinFreeDiskBytes: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeMeta(tt.meta, tt.leaving)
			if err != nil {
				t.Fatal(err)
			}
			got, leaving, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.meta || leaving != tt.leaving {
				t.Errorf("decode(encode(%+v, %v)) = %+v, %v", tt.meta, tt.leaving, got, leaving)
			}
		})
	}
}

func TestMetaIsCompact(t *testing.T) {
	b, err := encodeMeta(NodeMeta{ClientAddr: "10.0.0.1:7400", Zone: "a"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"c":"10.0.0.1:7400","z":"a"}`; string(b) != want {
		t.Errorf("encoded %s, want %s", b, want)
	}
}

func TestMetaDecodeTolerance(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    NodeMeta
		wantErr bool
	}{
		{name: "nil is zero", in: "", want: NodeMeta{}},
		{name: "unknown fields ignored", in: `{"c":"h:1","x":5}`, want: NodeMeta{ClientAddr: "h:1"}},
		{name: "garbage", in: "\x00\x01", wantErr: true},
		{name: "wrong type", in: `{"c":1}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := decodeMeta([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMetaSizeLimit(t *testing.T) {
	if err := checkMetaSize(NodeMeta{ClientAddr: strings.Repeat("a", 400)}); err != nil {
		t.Errorf("400-byte address rejected: %v", err)
	}
	err := checkMetaSize(NodeMeta{ClientAddr: strings.Repeat("a", memberlist.MetaMaxSize)})
	if err == nil {
		t.Fatal("oversized meta accepted")
	}
}

func TestLeavingMessageRoundTrip(t *testing.T) {
	for _, id := range []ids.NodeID{1, 0xdeadbeef, ^ids.NodeID(0)} {
		got, ok := decodeLeaving(encodeLeaving(id))
		if !ok || got != id {
			t.Errorf("decodeLeaving(encodeLeaving(%d)) = %d, %v", id, got, ok)
		}
	}
	for _, bad := range []string{"", "L", "X0000000000000001", "L0000000000000000", "Lzz00000000000001"} {
		if _, ok := decodeLeaving([]byte(bad)); ok {
			t.Errorf("decodeLeaving(%q) accepted", bad)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"c":"10.0.0.1:7400","z":"a","l":true}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, leaving, err := decodeMeta(b)
		if err != nil {
			return
		}
		enc, err := encodeMeta(m, leaving)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		m2, leaving2, err := decodeMeta(enc)
		if err != nil || m2 != m || leaving2 != leaving {
			t.Fatalf("round trip of %+v,%v gave %+v,%v,%v", m, leaving, m2, leaving2, err)
		}
	})
}
