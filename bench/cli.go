package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// subFlags are the cluster and output flags shared by the subcommands that start
// their own cluster (`bench scale`, `bench failover`).
type subFlags struct {
	servers, serverArgs *string
	asJSON, verbose     *bool
}

// defineSubFlags defines the shared flags on fs, writing into c. serverHelp and
// topicHelp describe --server and --topic for this subcommand.
func defineSubFlags(fs *flag.FlagSet, c *Config, serverHelp, topicHelp string) *subFlags {
	f := &subFlags{}
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "server processes to start on 127.0.0.1 (without --server)")
	f.servers = fs.String("server", "", serverHelp)
	fs.StringVar(&c.Binary, "binary", "", "shardlog binary for started servers (default: this executable if it is shardlog, else bin/shardlog)")
	fs.StringVar(&c.Dir, "dir", "", "parent of the started cluster's directory (default the system temp dir)")
	fs.StringVar(&c.ServerLogLevel, "server-log-level", c.ServerLogLevel, "started servers' --log-level")
	f.serverArgs = fs.String("server-args", "", "extra flags for every started server, space separated (e.g. \"--quiesce=false\")")
	fs.StringVar(&c.Topic, "topic", "", topicHelp)
	fs.BoolVar(&c.Keep, "keep", false, "keep the topic (and a started cluster's directory) after the run")
	f.asJSON = fs.Bool("json", false, "print the report as JSON")
	f.verbose = fs.Bool("v", false, "debug logging")
	return f
}

// parse parses args, refusing positional arguments, and completes c. It returns the
// extra server args, or false after printing why parsing failed.
func (f *subFlags) parse(fs *flag.FlagSet, args []string, c *Config, stderr io.Writer) ([]string, bool) {
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if err := extraArgs(fs.Args()); err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	for s := range strings.SplitSeq(*f.servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Servers = append(c.Servers, s)
		}
	}
	if c.Binary == "" {
		c.Binary = defaultBinary()
	}
	level := slog.LevelInfo
	if *f.verbose {
		level = slog.LevelDebug
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return strings.Fields(*f.serverArgs), true
}

// runSub runs a subcommand until it ends or SIGINT/SIGTERM, prints its report and
// returns the exit status. errCount reads the report's error count.
func runSub[R any](f *subFlags, stdout, stderr io.Writer, run func(context.Context) (*R, error),
	errCount func(*R) uint64, text func(io.Writer, *R)) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx)
	if errors.Is(err, ErrUsage) {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	var n uint64
	if rep != nil {
		n = errCount(rep)
	}
	return finish(stdout, stderr, rep, n, err, *f.asJSON, text)
}
