package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/timer"
)

var timerEndpoint string

func init() {
	registerComponent(component{name: "timer", flags: timerFlags, start: startTimer})
	register(command{name: "timer", summary: "add, list, remove and watch timer schedules and ticks", run: runTimer})
}

func timerFlags(fs *flag.FlagSet) {
	fs.StringVar(&timerEndpoint, "timer-endpoint", timer.DefaultConfig().Endpoint,
		"where the timer service binds for its clients (advertised as X-TIMER)")
}

// startTimer runs the timer service on the node's mesh, advertises it with
// X-TIMER and serves its admin API under /timer.
func startTimer(ctx context.Context, d *daemon) (func(), error) {
	cfg := timer.DefaultConfig()
	cfg.Endpoint = timerEndpoint
	cfg.DataDir = d.dataDir
	cfg.Mesh, cfg.Events = d.node, d.subscribe(1024)
	cfg.Logger = d.log.With().Str("room", "timer").Logger()
	if d.curve != nil {
		// --keys: only admitted nodes' clients reach the timer socket.
		cfg.Keys, cfg.Authorize = &d.curve.Keys, d.curve.Authorize
	}
	svc, err := timer.NewService(cfg)
	if err != nil {
		return nil, err
	}
	if err := svc.Start(ctx); err != nil {
		return nil, err
	}
	d.node.SetHeader("X-TIMER", svc.Endpoint())
	d.admin.HandleFunc("GET /timer", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, svc.Snapshot()) })
	d.admin.HandleFunc("GET /timer/schedules", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, svc.List()) })
	d.admin.HandleFunc("POST /timer/schedules", func(w http.ResponseWriter, r *http.Request) {
		var sp timer.Spec
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&sp); err != nil {
			http.Error(w, fmt.Sprintf("timer: bad schedule: %v", err), http.StatusBadRequest)
			return
		}
		if err := svc.Schedule(sp); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, sp)
	})
	d.admin.HandleFunc("DELETE /timer/schedules/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := svc.Cancel(r.PathValue("name"))
		switch {
		case errors.Is(err, timer.ErrUnknownName):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	return func() {
		if err := svc.Close(); err != nil {
			d.log.Error().Err(err).Msg("timer: close")
		}
	}, nil
}

// timerClientConfig is the config of a client of this logd's own timer
// service at ep, logging to log: with --keys, the client speaks CURVE with
// the node's key pair, which the service (closed with the same keys)
// expects and admits.
func (d *daemon) timerClientConfig(ep string, log zerolog.Logger) timer.ClientConfig {
	cfg := timer.ClientConfig{Endpoint: ep, Logger: log}
	if d.curve != nil {
		cfg.Keys, cfg.ServerKey = &d.curve.Keys, d.curve.Keys.Public
	}
	return cfg
}

const timerUsage = `Usage:
  logd timer add NAME (--every 5s | --cron '0 */5 * * * *' [--tz Europe/Paris] | --at TIME) [--scope node|cluster] [--payload TEXT]
  logd timer ls [--json]
  logd timer rm NAME
  logd timer watch NAME|'*' [--count N]
  logd timer watch --tick 1s|100ms|10ms [--count N]
  logd timer status

Every subcommand takes --data-dir (env LOGD_DATA_DIR) to find the local logd.`

func runTimer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, timerUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add":
		return timerAdd(ctx, args, stdout, stderr)
	case "ls", "list":
		return timerList(ctx, args, stdout, stderr)
	case "rm", "remove":
		return timerRemove(ctx, args, stdout, stderr)
	case "watch":
		return timerWatch(ctx, args, stdout, stderr)
	case "status":
		return timerStatus(ctx, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "logd timer: unknown subcommand %q\n\n%s\n", sub, timerUsage)
	return errUsage
}

// parseWithName parses a subcommand's flags around one positional NAME
// (before or after the flags).
func parseWithName(fs *flag.FlagSet, args []string, stderr io.Writer, required bool) (string, error) {
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return "", errUsage
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(1))
		return "", errUsage
	}
	if required && name == "" {
		fmt.Fprintf(stderr, "%s: NAME is required\n", fs.Name())
		fs.Usage()
		return "", errUsage
	}
	return name, nil
}

func timerAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("timer add", "Adds or replaces the schedule NAME on the mesh's timer nodes.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	every := fs.Duration("every", 0, "fire at every multiple of this duration since the Unix epoch")
	cronExpr := fs.String("cron", "", "cron expression, optional seconds field first, or @hourly, @every 90m...")
	tz := fs.String("tz", "", "IANA time zone of --cron (default UTC)")
	at := fs.String("at", "", "fire once at this time: RFC 3339, or +DURATION from now")
	scope := fs.String("scope", string(timer.ScopeNode), "node (fires on every timer node) or cluster (once in the mesh)")
	payload := fs.String("payload", "", "text handed to watchers with each fire")
	name, err := parseWithName(fs, args, stderr, true)
	if err != nil {
		return err
	}
	set := 0
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "every" || f.Name == "cron" || f.Name == "at" {
			set++
		}
	})
	if set != 1 {
		fmt.Fprintln(stderr, "logd timer add: give exactly one of --every, --cron and --at")
		return errUsage
	}
	sp := timer.Spec{Name: name, Every: timer.Duration(*every), Cron: *cronExpr, TZ: *tz, Scope: timer.Scope(*scope), Payload: *payload}
	if *at != "" {
		if sp.At, err = parseAt(*at); err != nil {
			fmt.Fprintf(stderr, "logd timer add: --at: %v\n", err)
			return errUsage
		}
	}
	if err := sp.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	if err := newAdminClient(*dataDir).do(ctx, http.MethodPost, "/timer/schedules", bytes.NewReader(body), nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s\n", name)
	return nil
}

func parseAt(s string) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, err
		}
		return time.Now().Add(d), nil
	}
	return time.Parse(time.RFC3339, s)
}

func timerList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("timer ls", "Lists the schedules of the local timer node.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, err := parseWithName(fs, args, stderr, false); err != nil {
		return err
	}
	var list []timer.ScheduleInfo
	if err := newAdminClient(*dataDir).do(ctx, http.MethodGet, "/timer/schedules", nil, &list); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tSCHEDULE\tNEXT\tLAST FIRED\tFIRES\tPAYLOAD")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Spec.Name, s.Spec.Scope, describe(s.Spec),
			formatTime(s.Next), formatTime(s.LastFired), s.Fires, s.Spec.Payload)
	}
	return tw.Flush()
}

func describe(sp timer.Spec) string {
	switch {
	case sp.Every != 0:
		return "every " + time.Duration(sp.Every).String()
	case sp.Cron != "" && sp.TZ != "":
		return fmt.Sprintf("cron %q %s", sp.Cron, sp.TZ)
	case sp.Cron != "":
		return fmt.Sprintf("cron %q", sp.Cron)
	default:
		return "at " + sp.At.Format(time.RFC3339)
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

func timerRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("timer rm", "Removes the schedule NAME from the mesh's timer nodes.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	name, err := parseWithName(fs, args, stderr, true)
	if err != nil {
		return err
	}
	if err := newAdminClient(*dataDir).do(ctx, http.MethodDelete, "/timer/schedules/"+url.PathEscape(name), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s\n", name)
	return nil
}

func timerStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("timer status", "Prints the local timer service's state as JSON: schedules, recent fires, ticks, peers' clock offsets.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	if _, err := parseWithName(fs, args, stderr, false); err != nil {
		return err
	}
	var snap timer.Snapshot
	if err := newAdminClient(*dataDir).do(ctx, http.MethodGet, "/timer", nil, &snap); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(snap)
}

// timerWatch prints fires of a schedule, or ticks, one line each, as a
// client of the local timer service, until interrupted or --count lines.
func timerWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("timer watch", "Prints the fires of schedule NAME ('*': all) on this node or, with --tick, the ticks of a period.\nA cluster-scope schedule fires once in the mesh: only on the node that fires it (see 'logd timer status', leader).", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	tick := fs.Duration("tick", 0, "print ticks of this period (1s, 100ms or 10ms) instead of fires")
	count := fs.Int("count", 0, "stop after this many lines (0: until interrupted)")
	keys := fs.String("keys", "", "key directory of the local logd (its --keys), needed when its timer socket is closed with CURVE")
	name, err := parseWithName(fs, args, stderr, false)
	if err != nil {
		return err
	}
	if (name == "") == (*tick == 0) {
		fmt.Fprintln(stderr, "logd timer watch: give a NAME or --tick, not both")
		return errUsage
	}
	var snap timer.Snapshot
	if err := newAdminClient(*dataDir).do(ctx, http.MethodGet, "/timer", nil, &snap); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The client's notices (connection lost, redialling) go to stderr.
	notices := zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}}).Level(zerolog.InfoLevel)
	ccfg := timer.ClientConfig{Endpoint: snap.Endpoint, Logger: notices}
	if snap.PublicKey == "" && *keys != "" {
		// No downgrade: keys were asked for, the service has none.
		return errors.New("logd timer watch: the timer service is open (the local logd runs without --keys): run without --keys")
	}
	if snap.PublicKey != "" {
		// The service is closed with the node's keys: dial it with the
		// same key directory, expecting the key the service reports.
		if *keys == "" {
			return errors.New("logd timer watch: the timer service is closed with CURVE: give --keys DIR (the logd's key directory)")
		}
		kp, _, err := curve.LoadKeyDir(*keys)
		if err != nil {
			return fmt.Errorf("--keys: %w", err)
		}
		serverKey, err := curve.ParsePublicKey(snap.PublicKey)
		if err != nil {
			return fmt.Errorf("timer service's public key: %w", err)
		}
		ccfg.Keys, ccfg.ServerKey = &kp, serverKey
	}
	c, err := timer.NewClient(ccfg)
	if err != nil {
		return err
	}
	defer c.Close()
	n := 0
	more := func() bool { n++; return *count == 0 || n < *count }
	if *tick != 0 {
		ticks, err := c.Ticks(ctx, *tick)
		if err != nil {
			return err
		}
		for t := range ticks {
			fmt.Fprintf(stdout, "tick %v n=%d at=%s late=%v missed=%d\n", t.Period, t.N,
				t.At.Format(time.RFC3339Nano), time.Since(t.At).Round(time.Microsecond), t.Missed)
			if !more() {
				return nil
			}
		}
		return c.Err() // nil: interrupted
	}
	fires, err := c.Watch(ctx, name)
	if err != nil {
		return err
	}
	for f := range fires {
		fmt.Fprintf(stdout, "fire %s at=%s fired=%s late=%v node=%s payload=%q\n", f.Name,
			f.At.Format(time.RFC3339Nano), f.FiredAt.Format(time.RFC3339Nano), f.Late, f.Node, f.Payload)
		if !more() {
			return nil
		}
	}
	return c.Err() // nil: interrupted
}
