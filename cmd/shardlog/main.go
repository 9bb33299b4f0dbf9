// Command shardlog is the one shardlog binary: the server (`shardlog server`), a local
// development cluster (`shardlog dev`) and the client commands (topics, produce,
// consume, dump, node, cluster health). Run `shardlog help` for the list.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// signalContext returns a context that the first SIGINT or SIGTERM cancels with an
// *interrupted cause, so that client commands can say why they stopped and exit with
// 128+signal. Later signals are ignored (the command is already ending).
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			cancel(&interrupted{sig: s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel(nil)
	}
}

// env is what a command may touch of the process, so that tests can run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one subcommand of the binary.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, g globals, args []string) error
	// client commands talk to a cluster with the global flags; a signal ends them with
	// status 128+signal and a one-line message.
	client bool
}

// commands lists the subcommands in the order usage shows them. It is filled by init
// because the usage printers that read it are reachable from the commands themselves.
var commands []command

func init() {
	commands = []command{
		{"server", "[flags]", "run a shardlog node", func(ctx context.Context, _ *env, _ globals, a []string) error { return runServer(ctx, a) }, false},
		{"dev", "[flags]", "run a local development cluster", func(ctx context.Context, e *env, _ globals, a []string) error { return runDev(ctx, e, a) }, false},
		{"create-topic", "NAME --shards N --replication-factor R [--retention 24h] [--retention-bytes N] [--compression none|s2|zstd]", "create a topic", cmdCreateTopic, true},
		{"delete-topic", "NAME", "delete a topic and its data", cmdDeleteTopic, true},
		{"topics", "", "list topics", cmdTopics, true},
		{"describe-topic", "NAME [--json]", "show a topic's shards, replicas (r<replica>@<node>), leaders, offsets, moves", cmdDescribeTopic, true},
		{"produce", "TOPIC [--key K] [--shard N] [--delivery-timeout D]", "produce one record per stdin line", cmdProduce, true},
		{"consume", "TOPIC [--shard N] [--from-beginning|--offset O] [--max N] [--follow] [--format text|json]", "print records", cmdConsume, true},
		{"dump", "[--json]", "show nodes, topics, placement, moves in progress and meta state", cmdDump, true},
		{"node list", "[--json]", "list nodes by number: state, zone, meta vote, replicas, leaders, disk", cmdNodeList, true},
		{"node drain", "N [--wait] [--cancel] [--json]", "move every replica off node N (--wait: follow the moves to the end)", cmdNodeDrain, true},
		{"node remove", "N [--json]", "remove node N, which holds no replica, for good", cmdNodeRemove, true},
		{"cluster health", "[--json]", "report under-replicated and leaderless shards, moves, down nodes; exit 3 if unhealthy", cmdClusterHealth, true},
		{"bench", "[--nodes 3|--server host:port] [--shards N] [--record-size B] [--duration 10s] [--json] | matrix", "measure produce/consume throughput, latency and server cost", cmdBench, false},
		{"chaos", "[--nodes 5] [--faults kill,pause,partition,restart-all] [--duration 60s] [--seed N] [--json]", "run a cluster under faults and check that nothing acknowledged is lost", cmdChaos, false},
	}
}
