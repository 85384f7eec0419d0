// Command logd is the logmesh daemon: one per host. It joins the ZRE mesh,
// collects, captures and publishes logs, runs the timer service, ships
// archives, takes part in batch reprocessing and serves the dashboard.
// Its subcommands talk to a running logd through its admin socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one logd subcommand. run gets the arguments after the
// subcommand's name and returns an error to report, or errUsage.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

// register adds a subcommand; each feature registers its own in its file.
func register(c command) { commands[c.name] = c }

// errUsage marks a bad command line: exit code 2, message already printed.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to the subcommand and maps its error to an exit code:
// 0 success, 1 error, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	} else if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		// Plain `logd --help`: the commands first, then the daemon's flags.
		usage(stdout)
		fmt.Fprintln(stdout)
		_ = commands["run"].run(ctx, args, stdout, stdout)
		return 0
	}
	if name == "help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "logd: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	err := c.run(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "logd %s: %v\n", name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: logd [command] [flags]")
	fmt.Fprintln(w, "\nWith no command, logd runs the daemon (same as 'logd run').")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'logd COMMAND --help' for the flags of a command.")
	fmt.Fprintln(w, "Every flag can also be set from the environment as LOGD_<FLAG> (e.g. LOGD_DATA_DIR).")
}
