package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"shardlog/client"
)

// Defaults of the global client flags.
const (
	defaultServer  = "127.0.0.1:7400"
	defaultTimeout = 10 * time.Second
	serverEnv      = "SHARDLOG_SERVER"
)

// errUsage is returned by commands whose flag set already printed the problem and its
// flags (server, dev): the process exits with status 2 without another message.
var errUsage = errors.New("shardlog: usage")

// globals are the flags every client command accepts, before or after the command name.
type globals struct {
	server  string
	timeout time.Duration
	// timeoutSet: --timeout was given before the command name (a command checks its
	// own flag set with flagGiven), for commands whose overall bound defaults longer.
	timeoutSet bool
}

// usageError is a command line mistake: it prints usage and exits with status 2.
type usageError struct {
	cmd string // "" for the top level
	msg string
}

func (u *usageError) Error() string { return u.msg }

func usagef(cmd, format string, a ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, a...)}
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, args []string, e *env) int {
	g := globals{server: defaultServer, timeout: defaultTimeout}
	if s := e.getenv(serverEnv); s != "" {
		g.server = s
	}
	fs := flag.NewFlagSet("shardlog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(e.stdout)
			return 0
		}
		return fail(e, &usageError{msg: err.Error()})
	}
	if fs.NArg() == 0 {
		usage(e.stderr)
		return 2
	}
	g.timeoutSet = flagGiven(fs, "timeout")
	if fs.Arg(0) == "help" {
		usage(e.stdout)
		return 0
	}
	c, rest, err := lookup(e, fs.Args())
	if err != nil {
		return fail(e, err)
	}
	err = c.run(ctx, e, g, rest)
	if i := interruption(ctx); i != nil && err != nil && c.client {
		var ie *interruptError
		if !errors.As(err, &ie) {
			err = &interruptError{by: i}
		}
	}
	return fail(e, err)
}

// lookup finds the command args start with: one word ("dump") or, for a group
// of commands ("node list", "node drain"), two.
func lookup(e *env, args []string) (command, []string, error) {
	name := args[0]
	group := false
	for _, c := range commands {
		if c.name == name {
			return c, args[1:], nil
		}
		group = group || strings.HasPrefix(c.name, name+" ")
	}
	if !group {
		return command{}, nil, usagef("", "unknown command %q", name)
	}
	if len(args) > 1 {
		switch args[1] {
		case "-h", "-help", "--help", "help":
			commandUsage(e.stdout, name, nil)
			return command{}, nil, flag.ErrHelp
		}
		for _, c := range commands {
			if c.name == name+" "+args[1] {
				return c, args[2:], nil
			}
		}
		return command{}, nil, usagef(name, "unknown command %q", name+" "+args[1])
	}
	return command{}, nil, usagef(name, "%s needs a subcommand", name)
}

// fail reports err as one line on stderr and returns the exit status for it.
func fail(e *env, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	var ex exitStatus
	if errors.As(err, &ex) {
		return int(ex) // the command already reported what happened
	}
	var ie *interruptError
	if errors.As(err, &ie) {
		fmt.Fprintf(e.stderr, "shardlog: %s\n", ie.Error())
		return ie.by.status()
	}
	fmt.Fprintf(e.stderr, "shardlog: %s\n", errorLine(err))
	var u *usageError
	if errors.As(err, &u) {
		if u.cmd == "" {
			usage(e.stderr)
		} else {
			commandUsage(e.stderr, u.cmd, nil)
		}
		return 2
	}
	return 1
}

// errorLine renders err on one line, with gRPC statuses reduced to their message.
func errorLine(err error) string {
	msg := err.Error()
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		m := st.Message()
		if m == "" {
			m = st.Code().String()
		}
		msg = strings.Replace(msg, se.Error(), m, 1)
	}
	return strings.Join(strings.Fields(msg), " ")
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: shardlog [--server host:port] [--timeout d] COMMAND [args]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nglobal flags (any position): --server (default %s, env %s), --timeout (default %s)\n",
		defaultServer, serverEnv, defaultTimeout)
	fmt.Fprintf(w, "  --timeout bounds connecting and each request; in produce also each record's delivery\n"+
		"  unless --delivery-timeout is given; in consume a shard that returns no record for that\n"+
		"  long before its end fails the command (with --follow: failing fetches are reported);\n"+
		"  in node drain --wait it also bounds the whole wait (default %s there)\n"+
		"client commands end at once on SIGINT (exit status 130) or SIGTERM (143)\n"+
		"exit status: 0 done, 1 error, 2 usage, 3 cluster health found the cluster unhealthy\n", drainWaitDefault)
	fmt.Fprintf(w, "run 'shardlog COMMAND -h' for a command's flags\n")
}

func commandUsage(w io.Writer, name string, fs *flag.FlagSet) {
	group := false
	for _, c := range commands {
		if c.name == name || strings.HasPrefix(c.name, name+" ") {
			fmt.Fprintf(w, "usage: shardlog %s %s\n", c.name, c.args)
			group = group || c.name != name
		}
	}
	if fs == nil {
		if group {
			name += " SUBCOMMAND"
		}
		fmt.Fprintf(w, "run 'shardlog %s -h' for its flags\n", name)
		return
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "server address host:port (env "+serverEnv+")")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on connecting and on each request (and produce's default --delivery-timeout)")
}

// newFlags returns a command's flag set with the global flags registered into g.
func newFlags(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	return fs
}

// parse parses flags interspersed with positional arguments and checks the number of
// positionals. -h prints the command's usage to stdout and returns flag.ErrHelp.
func parse(e *env, fs *flag.FlagSet, args []string, positionals int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				commandUsage(e.stdout, fs.Name(), fs)
				return nil, err
			}
			return nil, usagef(fs.Name(), "%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != positionals {
		return nil, usagef(fs.Name(), "%s takes %d argument(s), got %d", fs.Name(), positionals, len(pos))
	}
	return pos, nil
}

// dial connects to g.server (comma-separated addresses fail over). The client logs
// only errors, to stderr: a command reports what failed in its own one-line message.
func (g globals) dial(ctx context.Context, e *env) (*client.Client, error) {
	addrs := strings.Split(g.server, ",")
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	return client.Dial(ctx, addrs, client.Options{DialTimeout: g.timeout, Logger: log})
}

// call runs f with a context bounded by the request timeout. When that bound (not the
// caller's context) ended it, the error says so.
func (g globals) call(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err := f(cctx)
	if dl, _ := cctx.Deadline(); err != nil && ctx.Err() == nil && time.Until(dl) < 50*time.Millisecond {
		// The bound ended the call: the error may be DeadlineExceeded, or what the
		// transport made of the stream the server reset at its copy of the deadline
		// (which can fire a little before ours).
		return fmt.Errorf("no answer from %s within %s (--timeout): %w", g.server, g.timeout, err)
	}
	return err
}

// interrupted is the cause of a context canceled by a signal.
type interrupted struct{ sig os.Signal }

func (i *interrupted) Error() string { return "interrupted by " + i.name() }

func (i *interrupted) name() string {
	switch i.sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return i.sig.String()
}

// status is the conventional exit status of a process ended by the signal: 128+signal.
func (i *interrupted) status() int {
	if s, ok := i.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}

// interruption returns the signal that canceled ctx, or nil.
func interruption(ctx context.Context) *interrupted {
	var i *interrupted
	if errors.As(context.Cause(ctx), &i) {
		return i
	}
	return nil
}

// interruptError ends a client command stopped by a signal; detail says what it had
// done by then.
type interruptError struct {
	by     *interrupted
	detail string
}

func (e *interruptError) Error() string {
	if e.detail == "" {
		return e.by.Error()
	}
	return e.by.Error() + ": " + e.detail
}

// table returns a tabwriter for aligned columns.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 8, 2, ' ', 0) }

// exitStatus carries the exit status of a command that prints its own report
// (chaos, bench) through run's error return.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCode turns a harness's exit status into a command's error: nil for 0, else
// an exitStatus (the harness already reported what happened).
func exitCode(code int) error {
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}
