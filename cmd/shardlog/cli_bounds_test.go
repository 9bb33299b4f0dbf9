package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"shardlog/batch"
	"shardlog/client/clienttest"
	"shardlog/localcluster/localclustertest"
	"shardlog/proto/shardlogv1"
)

// Tests that no client command waits without bound: each gives up within --timeout
// (or --delivery-timeout) with a one-line message, and a signal ends it at once.

// childArgsEnv makes the test binary run main with these arguments (a JSON list), so
// that tests can send real signals to a real shardlog process.
const childArgsEnv = "SHARDLOG_CLI_TEST_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgsEnv); args != "" {
		var list []string
		if err := json.Unmarshal([]byte(args), &list); err != nil {
			panic(err)
		}
		os.Args = append([]string{"shardlog"}, list...)
		main()
		return
	}
	code := m.Run()
	localclustertest.Cleanup()
	os.Exit(code)
}

// slack is what a bounded command may take beyond its bound on a loaded 2-core machine.
const slack = 3 * time.Second

// syncBuffer is a bytes.Buffer safe for a writer and a reader in other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runBounded runs a command line in-process under ctx and fails the test when it has
// not returned within bound.
func runBounded(t *testing.T, ctx context.Context, addr string, stdin io.Reader, bound time.Duration, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	e := &env{stdin: stdin, stdout: &out, stderr: &errb, getenv: func(k string) string {
		if k == serverEnv {
			return addr
		}
		return ""
	}}
	start := time.Now()
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, e) }()
	select {
	case code := <-done:
		return result{code: code, stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	case <-time.After(bound):
		t.Fatalf("%v still running after %v\nstdout: %s\nstderr: %s", args, bound, out.String(), errb.String())
		return result{}
	}
}

// checkOneLine fails unless stderr is one line containing every want.
func checkOneLine(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d (after %v)\nstdout: %s\nstderr: %s", r.code, code, r.took, r.stdout, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr is not one line: %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("stderr %q lacks %q", r.stderr, w)
		}
	}
}

// interruptAfter returns a context canceled by a fake SIGINT after d, as main's signal
// handler cancels it.
func interruptAfter(t *testing.T, d time.Duration, sig os.Signal) context.Context {
	ctx, cancel := context.WithCancelCause(t.Context())
	timer := time.AfterFunc(d, func() { cancel(&interrupted{sig: sig}) })
	t.Cleanup(func() {
		timer.Stop()
		cancel(nil)
	})
	return ctx
}

// TestCLIProduceLeaderlessShard: a shard that only answers Unavailable fails the
// produce within --timeout, with one line naming the shard, the topic and the server's
// message. (The old code waited for the client's 2-minute delivery timeout.)
func TestCLIProduceLeaderlessShard(t *testing.T) {
	srv, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "events", "--shards", "4"); code != 0 {
		t.Fatal(e)
	}
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	r := runBounded(t, t.Context(), addr, strings.NewReader("a\nb\n"), time.Second+slack,
		"produce", "events", "--shard", "3", "--timeout", "1s")
	checkOneLine(t, r, 1, "2 of 2 records not acknowledged", "shard 3 of topic events",
		"delivery timeout (1s)", "injected: no leader")
	if r.took < time.Second {
		t.Fatalf("gave up after %v, before the 1s delivery timeout", r.took)
	}

	// --delivery-timeout overrides --timeout for the records.
	r = runBounded(t, t.Context(), addr, strings.NewReader("a\n"), 500*time.Millisecond+slack,
		"produce", "events", "--shard", "1", "--delivery-timeout", "500ms", "--timeout", "30s")
	checkOneLine(t, r, 1, "shard 1 of topic events", "delivery timeout (500ms)")
	r = runBounded(t, t.Context(), addr, strings.NewReader(""), slack, "produce", "events", "--delivery-timeout", "-1s")
	if r.code != 2 || !strings.Contains(r.stderr, "--delivery-timeout must not be negative") {
		t.Fatalf("negative delivery timeout: exit %d, %q", r.code, r.stderr)
	}
}

// hungServer answers nothing: every admin and log call waits until its deadline, as a
// paused node does.
type hungServer struct {
	shardlogv1.UnimplementedAdminServer
	shardlogv1.UnimplementedLogServer
}

func hang[T any](ctx context.Context) (T, error) {
	var zero T
	<-ctx.Done()
	return zero, ctx.Err()
}

func (hungServer) CreateTopic(ctx context.Context, _ *shardlogv1.CreateTopicRequest) (*shardlogv1.CreateTopicResponse, error) {
	return hang[*shardlogv1.CreateTopicResponse](ctx)
}

func (hungServer) DeleteTopic(ctx context.Context, _ *shardlogv1.DeleteTopicRequest) (*shardlogv1.DeleteTopicResponse, error) {
	return hang[*shardlogv1.DeleteTopicResponse](ctx)
}

func (hungServer) ListTopics(ctx context.Context, _ *shardlogv1.ListTopicsRequest) (*shardlogv1.ListTopicsResponse, error) {
	return hang[*shardlogv1.ListTopicsResponse](ctx)
}

func (hungServer) DescribeTopic(ctx context.Context, _ *shardlogv1.DescribeTopicRequest) (*shardlogv1.DescribeTopicResponse, error) {
	return hang[*shardlogv1.DescribeTopicResponse](ctx)
}

func (hungServer) DescribeCluster(ctx context.Context, _ *shardlogv1.DescribeClusterRequest) (*shardlogv1.DescribeClusterResponse, error) {
	return hang[*shardlogv1.DescribeClusterResponse](ctx)
}

func (hungServer) DrainNode(ctx context.Context, _ *shardlogv1.DrainNodeRequest) (*shardlogv1.DrainNodeResponse, error) {
	return hang[*shardlogv1.DrainNodeResponse](ctx)
}

func (hungServer) RemoveNode(ctx context.Context, _ *shardlogv1.RemoveNodeRequest) (*shardlogv1.RemoveNodeResponse, error) {
	return hang[*shardlogv1.RemoveNodeResponse](ctx)
}

// serve starts a gRPC server for admin and log on 127.0.0.1 and returns its address.
func serve(t *testing.T, admin shardlogv1.AdminServer, log shardlogv1.LogServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	shardlogv1.RegisterAdminServer(gs, admin)
	shardlogv1.RegisterLogServer(gs, log)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

var clientCommands = [][]string{
	{"create-topic", "x"}, {"delete-topic", "x"}, {"topics"}, {"describe-topic", "x"}, {"dump"},
	{"produce", "x"}, {"consume", "x"}, {"consume", "x", "--follow"},
	{"node", "list"}, {"node", "drain", "3"}, {"node", "drain", "3", "--wait"}, {"node", "drain", "3", "--cancel"},
	{"node", "remove", "3"}, {"cluster", "health"},
}

// TestCLIHungServerBounded: against a server that never answers, every client command
// fails within --timeout with a message saying so, and a signal ends it at once with
// status 128+signal.
func TestCLIHungServerBounded(t *testing.T) {
	addr := serve(t, hungServer{}, hungServer{})
	for _, args := range clientCommands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runBounded(t, t.Context(), addr, strings.NewReader("v\n"), 300*time.Millisecond+slack,
				append(args, "--timeout", "300ms")...)
			checkOneLine(t, r, 1, "no answer from "+addr+" within 300ms (--timeout)")

			ctx := interruptAfter(t, 200*time.Millisecond, syscall.SIGTERM)
			r = runBounded(t, ctx, addr, strings.NewReader("v\n"), 200*time.Millisecond+slack,
				append(args, "--timeout", "1m")...)
			checkOneLine(t, r, 143, "interrupted by SIGTERM")
		})
	}
}

// hungFetch serves the fake's admin and produce calls but never answers Fetch.
type hungFetch struct{ *clienttest.Server }

func (h hungFetch) Fetch(ctx context.Context, _ *shardlogv1.FetchRequest) (*shardlogv1.FetchResponse, error) {
	return hang[*shardlogv1.FetchResponse](ctx)
}

// TestCLIConsumeStalledShard: a shard whose fetches never answer fails a consume
// within --timeout naming the shard; with --follow it is reported on stderr and
// retried until a signal ends the command.
func TestCLIConsumeStalledShard(t *testing.T) {
	fake := clienttest.NewServer(1)
	addr := serve(t, fake, hungFetch{fake})
	if code, _, e := cliRun(t, addr, "", "create-topic", "t", "--shards", "2"); code != 0 {
		t.Fatal(e)
	}
	if _, err := fake.Append("t", 1, []batch.Record{{Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	r := runBounded(t, t.Context(), addr, nil, time.Second+slack, "consume", "t", "--timeout", "1s")
	checkOneLine(t, r, 1, "shard 1 of topic t: no records for 1s (--timeout) at offset 0, end offset 1")

	ctx := interruptAfter(t, 4*time.Second, os.Interrupt)
	r = runBounded(t, ctx, addr, nil, 4*time.Second+slack, "consume", "t", "--follow", "--from-beginning", "--timeout", "1s")
	if r.code != 130 || !strings.Contains(r.stderr, "still retrying after") ||
		!strings.Contains(r.stderr, "shard 0 of topic t: ") || !strings.Contains(r.stderr, "shard 1 of topic t: ") ||
		!strings.Contains(r.stderr, "shardlog: interrupted by SIGINT: 0 records printed\n") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// child is a shardlog process run from the test binary.
type child struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

func startChild(t *testing.T, addr string, args ...string) *child {
	t.Helper()
	c := &child{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0])
	list, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Env = append(os.Environ(), childArgsEnv+"="+string(list), serverEnv+"="+addr)
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill() // only the process this test started, by its PID
			<-c.done
		}
	})
	return c
}

// signal sends sig and waits up to bound for the process to exit; it returns the exit
// status and how long the exit took.
func (c *child) signal(t *testing.T, sig os.Signal, bound time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(bound):
		t.Fatalf("still running %v after %v\nstdout: %s\nstderr: %s", bound, sig, c.stdout, c.stderr)
	}
	return c.cmd.ProcessState.ExitCode(), time.Since(start)
}

// waitFor polls cond for up to 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storedRecords(t *testing.T, srv *clienttest.Server, topic string, shards uint32) int {
	n := 0
	for s := range shards {
		offs, _, err := srv.Records(topic, s)
		if err != nil {
			t.Fatal(err)
		}
		n += len(offs)
	}
	return n
}

// TestCLIProduceInterrupted: SIGINT ends a produce whose stdin is still open and whose
// records cannot be acknowledged, within 2s, with status 130 and the count of records
// acknowledged and not. (The old code read stdin on and waited for the records.)
func TestCLIProduceInterrupted(t *testing.T) {
	srv, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "t", "--shards", "2"); code != 0 {
		t.Fatal(e)
	}
	c := startChild(t, addr, "produce", "t", "--timeout", "1m")
	for i := range 50 {
		fmt.Fprintf(c.stdin, "a%d\n", i)
	}
	waitFor(t, "50 records stored", func() bool { return storedRecords(t, srv, "t", 2) == 50 })
	time.Sleep(200 * time.Millisecond) // let the acknowledgements reach the producer
	srv.SetFaults(clienttest.Faults{Unavailable: 1})
	for i := range 20 {
		fmt.Fprintf(c.stdin, "b%d\n", i)
	}
	waitFor(t, "produce retries", func() bool { return srv.Stats().Injected >= 4 })
	code, took := c.signal(t, os.Interrupt, 2*time.Second)
	if code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130\nstderr: %s", code, c.stderr)
	}
	want := "shardlog: interrupted by SIGINT: 50 records acknowledged, 20 not acknowledged (may or may not be written)\n"
	if c.stderr.String() != want || !strings.Contains(c.stdout.String(), "produced 50 records to ") {
		t.Fatalf("stdout %q\nstderr %q\nwant stderr %q", c.stdout, c.stderr, want)
	}
	t.Logf("exited %v after SIGINT", took)
}

// TestCLIConsumeFollowInterrupted: SIGINT and SIGTERM end consume --follow at once with
// status 130 and 143. (The old code exited 0.)
func TestCLIConsumeFollowInterrupted(t *testing.T) {
	srv, addr := startFake(t)
	if code, _, e := cliRun(t, addr, "", "create-topic", "t"); code != 0 {
		t.Fatal(e)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startChild(t, addr, "consume", "t", "--follow")
			waitFor(t, "a followed record", func() bool {
				if _, err := srv.Append("t", 0, []batch.Record{{Value: []byte("hello")}}); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
				return strings.Contains(c.stdout.String(), "hello\n")
			})
			code, took := c.signal(t, sig, 2*time.Second)
			if code != 128+int(sig) || !strings.HasPrefix(c.stderr.String(), "shardlog: interrupted by SIG") ||
				strings.Count(c.stderr.String(), "\n") != 1 {
				t.Fatalf("exit %d, stderr %q", code, c.stderr)
			}
			t.Logf("exited %v after %v", took, sig)
		})
	}
}
