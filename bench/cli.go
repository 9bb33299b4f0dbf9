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

// usageErrors collects every usage problem of a configuration, so one run reports
// them all.
type usageErrors struct{ errs []error }

// add records a problem; format describes it by its flags.
func (u *usageErrors) add(format string, a ...any) {
	u.errs = append(u.errs, fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...))
}

// err joins the problems, or is nil when there are none.
func (u *usageErrors) err() error { return errors.Join(u.errs...) }

// defineClusterFlags defines the flags that say which cluster to run against (or
// start) on fs, writing into c; c's Nodes and ServerLogLevel are the defaults.
// serverHelp and topicHelp describe --server and --topic for the command. It returns
// the --server value, which completeConfig splits.
func defineClusterFlags(fs *flag.FlagSet, c *Config, serverHelp, topicHelp string) *string {
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "server processes to start on 127.0.0.1 (without --server)")
	servers := fs.String("server", "", serverHelp)
	fs.StringVar(&c.Binary, "binary", "", "shardlog binary for started servers (default: this executable if it is shardlog, else bin/shardlog)")
	fs.StringVar(&c.Dir, "dir", "", "parent of the started cluster's directory (default the system temp dir)")
	fs.StringVar(&c.ServerLogLevel, "server-log-level", c.ServerLogLevel, "started servers' --log-level")
	fs.Func("server-args", "extra flags for every started server, space separated (e.g. \"--logdb tan\")", func(s string) error {
		c.ServerArgs = strings.Fields(s)
		return nil
	})
	fs.StringVar(&c.Topic, "topic", "", topicHelp)
	fs.BoolVar(&c.Keep, "keep", false, "keep the topic (and a started cluster's directory) after the run")
	return servers
}

// completeConfig finishes c after parsing: the --server list, the default binary and
// the logger.
func completeConfig(c *Config, servers string, verbose bool, stderr io.Writer) {
	for s := range strings.SplitSeq(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Servers = append(c.Servers, s)
		}
	}
	if c.Binary == "" {
		c.Binary = defaultBinary()
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// fitReplicationFactor lowers *rf to the number of nodes the harness starts when
// --replication-factor was not given (rfSet false), so `--nodes 1` works alone.
func fitReplicationFactor(c *Config, rf *int, rfSet bool) {
	if len(c.Servers) == 0 && !rfSet && c.Nodes > 0 && *rf > c.Nodes {
		*rf = c.Nodes
	}
}

// flagSet reports whether the flag called name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// subFlags are the cluster and output flags shared by the subcommands that start
// their own cluster (`bench scale`, `bench failover`).
type subFlags struct {
	servers         *string
	asJSON, verbose *bool
}

// defineSubFlags defines the shared flags on fs, writing into c.
func defineSubFlags(fs *flag.FlagSet, c *Config, serverHelp, topicHelp string) *subFlags {
	return &subFlags{
		servers: defineClusterFlags(fs, c, serverHelp, topicHelp),
		asJSON:  fs.Bool("json", false, "print the report as JSON"),
		verbose: fs.Bool("v", false, "debug logging"),
	}
}

// parse parses args, refusing positional arguments, and completes c. It reports
// false after printing why parsing failed.
func (f *subFlags) parse(fs *flag.FlagSet, args []string, c *Config, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if err := extraArgs(fs.Args()); err != nil {
		fmt.Fprintln(stderr, err)
		return false
	}
	completeConfig(c, *f.servers, *f.verbose, stderr)
	return true
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
