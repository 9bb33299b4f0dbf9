package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"shardlog/batch"
	"shardlog/client/clienttest"
)

// cliRun runs one command line in-process and returns its exit status and output.
func cliRun(t *testing.T, addr, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			if k == serverEnv {
				return addr
			}
			return ""
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	code = run(ctx, args, e)
	return code, out.String(), errb.String()
}

func startFake(t *testing.T) (*clienttest.Server, string) {
	t.Helper()
	srv := clienttest.NewServer(1)
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, addr
}

func TestCLIAdminCommands(t *testing.T) {
	_, addr := startFake(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{name: "create with flags after name", args: []string{"create-topic", "events", "--shards", "3", "--replication-factor", "1", "--retention", "24h", "--compression", "zstd"},
			contains: []string{"created topic events: 3 shards", "compression zstd", "retention 24h0m0s"}},
		{name: "create with flags before name", args: []string{"create-topic", "--shards=2", "logs"}, contains: []string{"created topic logs: 2 shards"}},
		{name: "create duplicate", args: []string{"create-topic", "logs"}, code: 1, contains: []string{`shardlog: topic "logs" already exists` + "\n"}},
		{name: "create bad compression", args: []string{"create-topic", "x", "--compression", "lz4"}, code: 2, contains: []string{"unknown codec"}},
		{name: "topics", args: []string{"topics"}, contains: []string{"NAME", "events  3", "zstd", "24h0m0s", "logs    2", "forever"}},
		{name: "describe", args: []string{"describe-topic", "events"}, contains: []string{"topic events: 3 shards", "SHARD_ID", "r1@1*", "ok"}},
		{name: "describe missing", args: []string{"describe-topic", "nope"}, code: 1, contains: []string{`shardlog: topic "nope" not found` + "\n"}},
		{name: "dump", args: []string{"dump"}, contains: []string{"meta leader 1", "ALIVE", "z1", "PLACEMENT", "events  0"}},
		{name: "global flag before command", args: []string{"--server", addr, "delete-topic", "logs"}, contains: []string{"deleted topic logs"}},
		{name: "delete missing", args: []string{"delete-topic", "logs"}, code: 1, contains: []string{"not found"}},
		{name: "missing argument", args: []string{"delete-topic"}, code: 2, contains: []string{"takes 1 argument", "usage: shardlog delete-topic"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, contains: []string{`unknown command "frobnicate"`, "commands:"}},
		{name: "bad flag", args: []string{"topics", "--nope"}, code: 2, contains: []string{"flag provided but not defined"}},
		{name: "produce bad shard", args: []string{"produce", "events", "--shard", "-2"}, code: 2, contains: []string{"--shard -2: want -1 (by key) or a shard index"}},
		{name: "no command", args: nil, code: 2, contains: []string{"usage: shardlog"}},
		{name: "help", args: []string{"help"}, contains: []string{"describe-topic"}},
		{name: "unreachable server", args: []string{"topics", "--server", "127.0.0.1:1", "--timeout", "200ms"}, code: 1, contains: []string{"could not connect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cliRun(t, addr, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			all := out + errOut
			for _, c := range tc.contains {
				if !strings.Contains(all, c) {
					t.Fatalf("output lacks %q:\n%s", c, all)
				}
			}
			if code == 1 && strings.Count(errOut, "\n") != 1 {
				t.Fatalf("error output is not one line: %q", errOut)
			}
		})
	}
}

func TestCLIProduceConsume(t *testing.T) {
	srv, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "t", "--shards", "4"); code != 0 {
		t.Fatal(e)
	}
	var in strings.Builder
	for i := range 500 {
		fmt.Fprintf(&in, "line-%d\n", i)
	}
	code, out, errOut := cliRun(t, addr, in.String(), "produce", "t")
	if code != 0 || !strings.Contains(out, "produced 500 records to ") || !strings.Contains(out, "rec/s") {
		t.Fatalf("produce: %d %s %s", code, out, errOut)
	}
	code, out, _ = cliRun(t, addr, "a\nb\nc\n", "produce", "t", "--key", "k")
	if code != 0 || !strings.Contains(out, "produced 3 records to 1 shard in") {
		t.Fatalf("keyed produce: %s", out)
	}
	code, out, _ = cliRun(t, addr, "x\ny\n", "produce", "--shard", "2", "t")
	if code != 0 || !strings.Contains(out, "shard 2: 2") {
		t.Fatalf("shard produce: %s", out)
	}

	// text: every value once, stops at the end offsets seen at start.
	code, out, errOut = cliRun(t, addr, "", "consume", "t")
	if code != 0 {
		t.Fatalf("consume: %s", errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 505 {
		t.Fatalf("consumed %d lines, want 505", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	for _, want := range []string{"line-0", "line-499", "a", "c", "x", "y"} {
		if !seen[want] {
			t.Fatalf("consume lacks %q", want)
		}
	}

	// json with shard and offset: records start inside a batch.
	code, out, errOut = cliRun(t, addr, "", "consume", "t", "--shard", "2", "--offset", "1", "--format", "json", "--max", "1")
	if code != 0 {
		t.Fatalf("consume json: %s", errOut)
	}
	var jr struct {
		Shard     uint32            `json:"shard"`
		Offset    uint64            `json:"offset"`
		Key       string            `json:"key"`
		Value     string            `json:"value"`
		Timestamp string            `json:"timestamp"`
		Headers   []json.RawMessage `json:"headers"`
	}
	if err := json.Unmarshal([]byte(out), &jr); err != nil {
		t.Fatalf("json %q: %v", out, err)
	}
	offs, recs, err := srv.Records("t", 2)
	if err != nil {
		t.Fatal(err)
	}
	if jr.Shard != 2 || jr.Offset != 1 || jr.Value != string(recs[1].Value) || offs[1] != 1 || jr.Timestamp == "" {
		t.Fatalf("json record %+v, log has %q", jr, recs[1].Value)
	}
}

func TestCLIConsumeErrors(t *testing.T) {
	srv, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "t"); code != 0 {
		t.Fatal(e)
	}
	if _, err := srv.Append("t", 0, []batch.Record{{Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "conflicting start", args: []string{"consume", "t", "--from-beginning", "--offset", "3"}, code: 2, want: "exclude each other"},
		{name: "bad format", args: []string{"consume", "t", "--format", "xml"}, code: 2, want: "--format"},
		{name: "missing topic", args: []string{"consume", "nope"}, code: 1, want: `shardlog: topic "nope" not found`},
		{name: "bad shard", args: []string{"consume", "t", "--shard", "5"}, code: 1, want: "invalid shard"},
		{name: "past the end", args: []string{"consume", "t", "--offset", "1"}, code: 0},
		{name: "produce to missing topic", args: []string{"produce", "nope"}, code: 1, want: "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cliRun(t, addr, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q", code, tc.code, out, errOut)
			}
		})
	}
}

func TestCLIProduceLineTooLong(t *testing.T) {
	_, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "t"); code != 0 {
		t.Fatal(e)
	}
	code, out, errOut := cliRun(t, addr, "ok\n"+strings.Repeat("x", 100)+"\n", "produce", "t", "--max-line-bytes", "50")
	if code != 1 || !strings.Contains(errOut, "line 2 is longer than --max-line-bytes=50") || !strings.Contains(out, "produced 1 records") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
}

func TestCLIDumpJSON(t *testing.T) {
	_, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "t", "--shards", "2"); code != 0 {
		t.Fatal(e)
	}
	code, out, errOut := cliRun(t, addr, "", "dump", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var v struct {
		Nodes  []map[string]any `json:"nodes"`
		Topics []map[string]any `json:"topics"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Nodes) != 1 || len(v.Topics) != 1 {
		t.Fatalf("dump json %v: %s", err, out)
	}
}

func TestCLIErrorLine(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "plain", err: fmt.Errorf("a\nb"), want: "a b"},
		{name: "status", err: status.Error(codes.NotFound, "topic \"x\" not found"), want: `topic "x" not found`},
		{name: "wrapped status", err: fmt.Errorf("line 3: %w", status.Error(codes.Unavailable, "no leader")), want: "line 3: no leader"},
		{name: "empty status message", err: status.Error(codes.Internal, ""), want: "Internal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorLine(tc.err); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}
