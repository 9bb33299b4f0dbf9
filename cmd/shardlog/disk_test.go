package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"shardlog/node"
	"shardlog/proto/shardlogv1"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "1.5GiB", want: 3 << 29},
		{in: "10GB", want: 10e9},
		{in: "64 KiB", want: 64 << 10},
		{in: "100B", want: 100},
		{in: "2TiB", want: 2 << 40},
		{in: "512mb", wantErr: `unknown unit "mb"`},
		{in: "GiB", wantErr: "not a number"},
		{in: "-1GiB", wantErr: "not a number"},
		{in: "1..2MiB", wantErr: "not a number"},
		{in: "99999999TiB", wantErr: "too large"},
	}
	for _, tc := range tests {
		got, err := parseByteSize(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseByteSize(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for in, want := range map[uint64]string{0: "0B", 1023: "1023B", 1 << 10: "1KiB", 1536: "1.5KiB", 64 << 20: "64MiB", 1 << 30: "1GiB"} {
		if got := byteSize(in).String(); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestServerMinFreeDiskFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    int64
		wantErr bool
	}{
		{args: nil, want: 1 << 30},
		{args: []string{"--min-free-disk", "512MiB"}, want: 512 << 20},
		{args: []string{"--min-free-disk", "0"}, want: -1}, // off
		{args: []string{"--min-free-disk", "lots"}, wantErr: true},
	}
	for _, tc := range tests {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(new(bytes.Buffer))
		cfg := node.DefaultConfig()
		serverFlags(fs, &cfg)
		err := fs.Parse(tc.args)
		if (err != nil) != tc.wantErr || (err == nil && cfg.MinFreeDiskBytes != tc.want) {
			t.Errorf("%v: MinFreeDiskBytes %d, err %v; want %d (error %v)", tc.args, cfg.MinFreeDiskBytes, err, tc.want, tc.wantErr)
		}
	}
}

func TestDumpShowsDiskState(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out}
	writeDump(e, &shardlogv1.DescribeClusterResponse{ThisNodeId: 1, Nodes: []*shardlogv1.NodeInfo{
		{NodeId: 1, Num: 1, State: "ALIVE", DiskFreeBytes: 3 << 30, MinFreeDiskBytes: 1 << 30},
		{NodeId: 2, Num: 2, State: "ALIVE", DiskFull: true, DiskFreeBytes: 900 << 20, MinFreeDiskBytes: 1 << 30},
		{NodeId: 3, Num: 3, State: "ALIVE"},
	}})
	lines := strings.Split(out.String(), "\n")
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line starting %q in:\n%s", prefix, out.String())
		return ""
	}
	for prefix, want := range map[string]string{"NODE ": "DISK", "1 ": "ok(3GiB free)", "2 ": "DISK_FULL(900MiB free < 1GiB)", "3 ": "ok"} {
		if l := find(prefix); !strings.HasSuffix(strings.TrimSpace(l), want) {
			t.Errorf("dump line %q does not end in %q", l, want)
		}
	}
}
