package bench

import (
	"bytes"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

func TestPayloadCompressibility(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, size := range []int{100, 1024} {
		for _, c := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
			p, err := NewPayload(size, c, 42)
			if err != nil {
				t.Fatal(err)
			}
			var raw []byte
			now := time.Now()
			for i := range 2000 {
				v := p.Next(now.Add(time.Duration(i) * 37 * time.Microsecond))
				if len(v) != size {
					t.Fatalf("value of %d bytes, want %d", len(v), size)
				}
				raw = append(raw, v...)
			}
			// The stamp is part of the random bytes, but its high bytes barely change
			// from one record to the next, so compressors remove up to 8 bytes more.
			wantRatio := 1 - c
			for _, codec := range []struct {
				name string
				out  []byte
			}{{"s2", s2.Encode(nil, raw)}, {"zstd", enc.EncodeAll(raw, nil)}} {
				ratio := float64(len(codec.out)) / float64(len(raw))
				if ratio < wantRatio-0.03-float64(stampSize)/float64(size) || ratio > wantRatio+0.08 {
					t.Errorf("size %d compressibility %.2f: %s ratio %.3f, want about %.3f", size, c, codec.name, ratio, wantRatio)
				}
			}
		}
	}
}

func TestPayloadStampAndVariety(t *testing.T) {
	p, err := NewPayload(64, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Unix(1700000000, 123456789)
	a, b := p.Next(sent), p.Next(sent)
	if got, ok := SentAt(a); !ok || !got.Equal(sent) {
		t.Fatalf("SentAt = %v, %v; want %v", got, ok, sent)
	}
	if bytes.Equal(a[stampSize:], b[stampSize:]) {
		t.Fatal("two values have the same random bytes")
	}
	q, _ := NewPayload(64, 0, 7)
	if c := q.Next(sent); !bytes.Equal(c, a) {
		t.Fatal("the same seed made a different first value")
	}
	small, _ := NewPayload(4, 0, 1)
	if _, ok := SentAt(small.Next(sent)); ok {
		t.Fatal("a 4-byte value claims a stamp")
	}
	empty, _ := NewPayload(0, 0, 1)
	if v := empty.Next(sent); len(v) != 0 {
		t.Fatalf("size 0 made %d bytes", len(v))
	}
}

func TestNewPayloadRejects(t *testing.T) {
	for _, tt := range []struct {
		size int
		c    float64
	}{{-1, 0}, {10, -0.1}, {10, 1.1}} {
		if _, err := NewPayload(tt.size, tt.c, 0); err == nil {
			t.Errorf("NewPayload(%d, %v) accepted", tt.size, tt.c)
		}
	}
}
