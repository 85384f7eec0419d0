package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// options is the parsed command line.
type options struct {
	follow   bool
	since    time.Duration
	level    string
	services listFlag
	nodes    listFlag
	grep     string
	exclude  string
	json     bool
	noColor  bool
	count    int
	join     string
	connect  listFlag
	wait     time.Duration
	// historyWait is how long the history merge waits for a logd's next
	// event before printing the others' without it.
	historyWait time.Duration
	keys        string

	beaconPort int
	iface      string
	broadcast  string
	bind       string

	filter    logpub.Filter // level, service and node filters, applied by the logds
	grepRE    *regexp.Regexp
	excludeRE *regexp.Regexp
}

// listFlag is a repeatable, comma-separated string list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

var errUsage = errors.New("usage")

const usageHead = `Usage: logtail [flags]

Tails the logs of every logd in the mesh, merged, filtered at the source.
Without --follow it prints the history of the last --since (default 10m)
and exits; with --follow it prints live events (after the --since history
if given) until interrupted.

History is printed merged across the logds in the order they received the
events (each logd's own order is kept); a logd that sends nothing for
--history-wait is reported and no longer waited for. Live events follow,
as they arrive.

Events a logd drops for a slow logtail are reported on stderr ("node N
service S: K events missed") when the next event of their source arrives,
or, if none does, when that logd's stream ends.

Every flag can also be set from the environment as LOGTAIL_<FLAG>
(LOGTAIL_LEVEL=warn, LOGTAIL_SERVICE=api, LOGTAIL_NO_COLOR=1, ...).

Exit status: 0 done (or interrupted, or --count reached), 1 error (no logd
reachable, a stream failed), 2 bad usage.

Flags:
`

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("logtail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.follow, "f", false, "short for --follow (default false)")
	fs.BoolVar(&o.follow, "follow", false, "keep printing live events until interrupted, reconnecting to logds that restart (default false)")
	fs.DurationVar(&o.since, "since", 0, "first print the history of this last duration, e.g. 10m, by the logds' receive times, exact to the nanosecond (default 10m without --follow, none with it)")
	fs.StringVar(&o.level, "level", "", "only this level and above: trace, debug, info, warn, error, fatal, panic; events without a level (zerolog's Log()) show only without --level (default all, with a level or none)")
	fs.Var(&o.services, "service", "only these services (comma-separated or repeated; default all)")
	fs.Var(&o.nodes, "node", "only these nodes, by name, UUID or the UUID's first 8+ hex digits as printed (comma-separated or repeated; default all)")
	fs.StringVar(&o.grep, "grep", "", "only events whose JSON line matches this regular expression")
	fs.StringVar(&o.exclude, "exclude", "", "drop events whose JSON line matches this regular expression")
	fs.BoolVar(&o.json, "json", false, "print the raw JSON lines, byte-identical to the apps' zerolog output")
	fs.BoolVar(&o.noColor, "no-color", false, "no colors in the pretty output (automatic when stdout is not a terminal)")
	fs.IntVar(&o.count, "count", 0, "exit after printing this many events (0 = no limit)")
	fs.StringVar(&o.join, "join", "", "mesh gossip seeds host:port (comma-separated), where UDP beacons do not reach")
	fs.Var(&o.connect, "connect", "tail these logd publish endpoints directly, without the mesh (e.g. tcp://10.0.0.5:40123; comma-separated or repeated)")
	fs.IntVar(&o.beaconPort, "beacon-port", 5670, "UDP port of the mesh's ZRE beacons (0: gossip through --join only)")
	fs.StringVar(&o.iface, "interface", "", "network interface for the mesh (default: first up IPv4 interface)")
	fs.StringVar(&o.broadcast, "broadcast", "", "address beacons are sent to (default: the interface's subnet broadcast)")
	fs.StringVar(&o.bind, "bind", "", "host logtail's mesh mailbox binds to (default 0.0.0.0)")
	fs.StringVar(&o.keys, "keys", "", "CURVE key directory, as logd --keys: this logtail's key pair (NAME.key_secret) and the public keys of the logds it admits; required on a closed mesh")
	fs.DurationVar(&o.wait, "wait", 2*time.Second, "how long to look for logds on the mesh: without --follow before querying, with --since before printing the merged history")
	fs.DurationVar(&o.historyWait, "history-wait", 3*time.Second, "how long the merged history waits for a logd's next events before printing the others' without them")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "logtail: unexpected argument %q\n", fs.Arg(0))
		return nil, errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["f"] {
		set["follow"] = true
	}
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "f" || bad != nil {
			return
		}
		env := "LOGTAIL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				bad = fmt.Errorf("%s=%q: %w", env, v, err)
			}
			set[f.Name] = true
		}
	})
	if bad != nil {
		fmt.Fprintf(stderr, "logtail: %v\n", bad)
		return nil, errUsage
	}
	if !o.follow && !set["since"] {
		o.since = 10 * time.Minute
	}
	if o.since < 0 || o.count < 0 || o.historyWait <= 0 {
		fmt.Fprintln(stderr, "logtail: --since and --count must not be negative, --history-wait must be positive")
		return nil, errUsage
	}
	o.filter = logpub.Filter{Services: o.services, Nodes: o.nodes}
	if o.level != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(o.level))
		if err != nil || l < zerolog.TraceLevel || l > zerolog.PanicLevel {
			fmt.Fprintf(stderr, "logtail: --level %q: want trace, debug, info, warn, error, fatal or panic\n", o.level)
			return nil, errUsage
		}
		o.filter = o.filter.AtLeast(l)
	}
	var err error
	if o.grep != "" {
		if o.grepRE, err = regexp.Compile(o.grep); err != nil {
			fmt.Fprintf(stderr, "logtail: --grep: %v\n", err)
			return nil, errUsage
		}
	}
	if o.exclude != "" {
		if o.excludeRE, err = regexp.Compile(o.exclude); err != nil {
			fmt.Fprintf(stderr, "logtail: --exclude: %v\n", err)
			return nil, errUsage
		}
	}
	return o, nil
}
