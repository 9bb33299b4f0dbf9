package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"reflect"
	"testing"
)

var allCodecs = []Codec{CodecNone, CodecS2, CodecZstd}

func sampleRecords(n int, valueSize int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     bytes.Repeat([]byte{byte('a' + i%26)}, valueSize),
			Timestamp: 1_700_000_000_000 + int64(i%7)*13 - 20,
		}
		if i%3 == 0 {
			recs[i].Headers = []Header{{Key: "trace", Value: []byte("abc")}, {Key: "empty"}}
		}
	}
	return recs
}

func TestParseCodec(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Codec
		wantErr bool
	}{
		{name: "empty is none", in: "", want: CodecNone},
		{name: "none", in: "none", want: CodecNone},
		{name: "s2", in: "s2", want: CodecS2},
		{name: "zstd", in: "zstd", want: CodecZstd},
		{name: "unknown", in: "lz4", wantErr: true},
		{name: "case matters", in: "ZSTD", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCodec(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownCodec) || !bytes.Contains([]byte(err.Error()), []byte(tt.in)) {
					t.Fatalf("ParseCodec(%q) error = %v, want ErrUnknownCodec naming the value", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCodec(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in && tt.in != "" {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestBatchRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		recs []Record
	}{
		{name: "one empty record", recs: []Record{{Timestamp: 5}}},
		{name: "negative and zero timestamps", recs: []Record{{Key: []byte("k"), Timestamp: 0}, {Value: []byte("v"), Timestamp: -10}}},
		{name: "extreme timestamps", recs: []Record{{Timestamp: math.MaxInt64}, {Timestamp: math.MinInt64}}},
		{name: "headers", recs: []Record{{Key: []byte("k"), Value: []byte("v"), Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: "", Value: []byte("2")}}, Timestamp: 1}}},
		{name: "many small", recs: sampleRecords(500, 10)},
		{name: "few large", recs: sampleRecords(3, 200_000)},
	}
	for _, tt := range tests {
		for _, codec := range allCodecs {
			t.Run(tt.name+"/"+codec.String(), func(t *testing.T) {
				prefix := []byte("prefix")
				b, err := Encode(bytes.Clone(prefix), tt.recs, codec)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b[:len(prefix)], prefix) {
					t.Fatal("Encode did not append to dst")
				}
				b = b[len(prefix):]
				info, err := Validate(b, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				wantMax := tt.recs[0].Timestamp
				for _, r := range tt.recs {
					wantMax = max(wantMax, r.Timestamp)
				}
				want := Info{Codec: codec, Count: uint32(len(tt.recs)), FirstTimestamp: tt.recs[0].Timestamp, MaxTimestamp: wantMax, Size: len(b)}
				if info != want {
					t.Fatalf("info = %+v, want %+v", info, want)
				}
				got, err := Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, normalize(tt.recs)) {
					t.Fatalf("decoded records differ")
				}
			})
		}
	}
}

// normalize maps empty byte slices to nil, as the decoder does.
func normalize(recs []Record) []Record {
	out := make([]Record, len(recs))
	nilIfEmpty := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	for i, r := range recs {
		out[i] = Record{Key: nilIfEmpty(r.Key), Value: nilIfEmpty(r.Value), Timestamp: r.Timestamp}
		for _, h := range r.Headers {
			out[i].Headers = append(out[i].Headers, Header{Key: h.Key, Value: nilIfEmpty(h.Value)})
		}
	}
	return out
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Encode(nil, nil, CodecNone); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty batch: %v", err)
	}
	if _, err := Encode(nil, sampleRecords(1, 1), Codec(9)); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("bad codec: %v", err)
	}
}

// reseal recomputes the CRC after a test edited the header or payload.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offCodec:], castagnoli))
	return b
}

func TestCorruptBatches(t *testing.T) {
	for _, codec := range allCodecs {
		good, err := Encode(nil, sampleRecords(20, 100), codec)
		if err != nil {
			t.Fatal(err)
		}
		edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
		tests := []struct {
			name string
			b    []byte
			want error
		}{
			{name: "empty", b: nil, want: ErrCorrupt},
			{name: "short header", b: good[:HeaderSize-1], want: ErrCorrupt},
			{name: "truncated payload", b: good[:len(good)-1], want: ErrCorrupt},
			{name: "trailing byte", b: append(bytes.Clone(good), 0), want: ErrCorrupt},
			{name: "bad magic", b: edit(func(b []byte) []byte { b[0] = 0; return b }), want: ErrCorrupt},
			{name: "flipped payload bit", b: edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), want: ErrCorrupt},
			{name: "flipped count bit", b: edit(func(b []byte) []byte { b[offCount] ^= 1; return b }), want: ErrCorrupt},
			{name: "unknown codec", b: edit(func(b []byte) []byte { b[offCodec] = 7; return reseal(b) }), want: ErrCorrupt},
			{name: "flags set", b: edit(func(b []byte) []byte { b[offFlags] = 1; return reseal(b) }), want: ErrCorrupt},
			{name: "zero count", b: edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[offCount:], 0); return reseal(b) }), want: ErrCorrupt},
			{name: "huge count", b: edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[offCount:], math.MaxUint32); return reseal(b) }), want: ErrCorrupt},
			{name: "bomb", b: edit(func(b []byte) []byte {
				binary.LittleEndian.PutUint32(b[offRawLen:], MaxDecodedBytes+1)
				return reseal(b)
			}), want: ErrTooLarge},
			{name: "max before first", b: edit(func(b []byte) []byte {
				binary.LittleEndian.PutUint64(b[offMaxTS:], 1<<63) // MinInt64
				return reseal(b)
			}), want: ErrCorrupt},
		}
		for _, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				if _, err := Check(tt.b); !errors.Is(err, tt.want) {
					t.Fatalf("Check error = %v, want %v", err, tt.want)
				}
				if _, err := Decode(tt.b); !errors.Is(err, tt.want) {
					t.Fatalf("Decode error = %v, want %v", err, tt.want)
				}
			})
		}
	}
}

// TestPayloadLies covers payloads that pass the CRC but whose
// contents disagree with the header: only Validate and Decode see it.
func TestPayloadLies(t *testing.T) {
	good, err := Encode(nil, sampleRecords(4, 10), CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(b []byte)
	}{
		{name: "max timestamp wrong", edit: func(b []byte) {
			binary.LittleEndian.PutUint64(b[offMaxTS:], binary.LittleEndian.Uint64(b[offMaxTS:])+1)
		}},
		{name: "count too high", edit: func(b []byte) { b[offCount]++ }},
		{name: "count too low", edit: func(b []byte) { b[offCount]-- }},
		{name: "key length overruns", edit: func(b []byte) { b[HeaderSize] = 0x7f }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tt.edit(b)
			reseal(b)
			if _, err := Check(b); err != nil {
				t.Fatalf("Check should not look at the payload: %v", err)
			}
			if _, err := Validate(b, Limits{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Validate error = %v, want ErrCorrupt", err)
			}
			if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	recs := sampleRecords(10, 1000)
	recs[3].Headers = []Header{{Key: string(bytes.Repeat([]byte("h"), 600)), Value: make([]byte, 600)}}
	b, err := Encode(nil, recs, CodecS2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		limits  Limits
		wantErr error
	}{
		{name: "defaults", limits: Limits{}},
		{name: "batch bytes", limits: Limits{MaxBatchBytes: len(b) - 1}, wantErr: ErrTooLarge},
		{name: "batch bytes exact", limits: Limits{MaxBatchBytes: len(b)}},
		{name: "record count", limits: Limits{MaxRecordsPerBatch: 9}, wantErr: ErrTooLarge},
		{name: "record bytes counts headers", limits: Limits{MaxRecordBytes: 2000}, wantErr: ErrTooLarge},
		{name: "record bytes fits", limits: Limits{MaxRecordBytes: 2300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(b, tt.limits)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Validate error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, codec := range allCodecs {
		for _, recs := range [][]Record{sampleRecords(1, 0), sampleRecords(5, 20), {{Key: []byte("k"), Headers: []Header{{Key: "h"}}, Timestamp: -3}}} {
			b, err := Encode(nil, recs, codec)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeProperty(t, b)
		// Random bytes almost never carry a valid CRC; also try them resealed
		// (length and CRC fixed) so the fuzzer reaches the payload decoders.
		if len(b) >= HeaderSize {
			b = bytes.Clone(b)
			binary.LittleEndian.PutUint32(b[offPayLen:], uint32(len(b)-HeaderSize))
			checkDecodeProperty(t, reseal(b))
		}
	})
}

func checkDecodeProperty(t *testing.T, b []byte) {
	info, cerr := Check(b)
	_, verr := Validate(b, Limits{MaxBatchBytes: math.MaxInt32, MaxRecordBytes: math.MaxInt32, MaxRecordsPerBatch: math.MaxInt32})
	recs, err := Decode(b)
	if (err == nil) != (verr == nil) {
		t.Fatalf("Decode error %v but Validate error %v", err, verr)
	}
	if err != nil {
		return
	}
	if cerr != nil {
		t.Fatalf("decoded a batch that Check rejects: %v", cerr)
	}
	again, err := Encode(nil, recs, info.Codec)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	recs2, err := Decode(again)
	if err != nil {
		t.Fatalf("decode re-encoded: %v", err)
	}
	if !reflect.DeepEqual(recs, recs2) {
		t.Fatalf("round trip changed records")
	}
}

func BenchmarkSegmentEncode(b *testing.B) {
	recs := sampleRecords(256, 100)
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(encodedRecordsSize(recs)))
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = Encode(buf[:0], recs, codec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// encodedRecordsSize is the uncompressed payload size: benchmarks report
// throughput in record bytes, whatever the codec.
func encodedRecordsSize(recs []Record) int {
	n := 0
	for i := range recs {
		n += encodedRecordSize(&recs[i], recs[0].Timestamp)
	}
	return n
}

func BenchmarkSegmentDecode(b *testing.B) {
	recs := sampleRecords(256, 100)
	for _, codec := range allCodecs {
		enc, err := Encode(nil, recs, codec)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("decode/"+codec.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(encodedRecordsSize(recs)))
			for b.Loop() {
				if _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("validate/"+codec.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(encodedRecordsSize(recs)))
			for b.Loop() {
				if _, err := Validate(enc, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestReadHeaderSkipsOnlyTheCRC(t *testing.T) {
	b, err := Encode(nil, []Record{{Value: []byte("a"), Timestamp: 5}, {Value: []byte("b"), Timestamp: 7}}, CodecS2)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ReadHeader(b)
	if err != nil || info.Count != 2 || info.FirstTimestamp != 5 || info.MaxTimestamp != 7 || info.Codec != CodecS2 {
		t.Fatalf("ReadHeader = %+v, %v", info, err)
	}
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)-1] ^= 0xff
	if _, err := ReadHeader(flipped); err != nil {
		t.Fatalf("ReadHeader checked the payload: %v", err)
	}
	if _, err := Check(flipped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check on a flipped payload: %v", err)
	}
	if _, err := ReadHeader(b[:10]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadHeader on a short batch: %v", err)
	}
}
