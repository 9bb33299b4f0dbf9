// Command shardlog is the one shardlog binary: the server (`shardlog server`), a local
// development cluster (`shardlog dev`) and the client commands (topics, produce,
// consume, dump). Run `shardlog help` for the list.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"shardlog/bench"
	"shardlog/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
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
}

// commands lists the subcommands in the order usage shows them. It is filled by init
// because the usage printers that read it are reachable from the commands themselves.
var commands []command

func init() {
	commands = []command{
		{"server", "[flags]", "run a shardlog node", func(_ context.Context, _ *env, _ globals, a []string) error { return runServer(a) }},
		{"dev", "[flags]", "run a local development cluster", func(_ context.Context, _ *env, _ globals, a []string) error { return runDev(a) }},
		{"create-topic", "NAME --shards N --replication-factor R [--retention 24h] [--retention-bytes N] [--compression none|s2|zstd]", "create a topic", cmdCreateTopic},
		{"delete-topic", "NAME", "delete a topic and its data", cmdDeleteTopic},
		{"topics", "", "list topics", cmdTopics},
		{"describe-topic", "NAME", "show a topic's shards, replicas, leaders and offsets", cmdDescribeTopic},
		{"produce", "TOPIC [--key K] [--shard N]", "produce one record per stdin line", cmdProduce},
		{"consume", "TOPIC [--shard N] [--from-beginning|--offset O] [--max N] [--follow] [--format text|json]", "print records", cmdConsume},
		{"dump", "[--json]", "show nodes, topics, placement and meta state", cmdDump},
		{"bench", "[--nodes 3|--server host:port] [--shards N] [--record-size B] [--duration 10s] [--json] | matrix", "measure produce/consume throughput, latency and server cost", mainStatus(bench.Main)},
		{"chaos", "[--nodes 5] [--faults kill,pause,partition,restart-all] [--duration 60s] [--seed N] [--json]", "run a cluster under faults and check that nothing acknowledged is lost", mainStatus(chaos.Main)},
	}
}
