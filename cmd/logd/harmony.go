package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/harmony"
	"github.com/logmesh/logmesh/mesh"
)

// Every logd runs a Harmony worker (unless --harmony=false): it joins the
// mesh group "harmony" and advertises its task endpoint in X-HARMONY.
// `logd reprocess` drives a batch over those workers.

func init() {
	registerComponent(component{name: "harmony", flags: harmonyFlags, start: startHarmony})
	register(command{name: "reprocess", summary: "re-run a filter, count or conversion over log archives, spread over the mesh's workers", run: runReprocess})
}

var harmonyOpts struct {
	enabled     bool
	bind        string
	concurrency int
}

func harmonyFlags(fs *flag.FlagSet) {
	fs.BoolVar(&harmonyOpts.enabled, "harmony", true, "run a Harmony worker that takes part in batch reprocessing")
	fs.StringVar(&harmonyOpts.bind, "harmony-bind", "0.0.0.0:0", "host:port the Harmony worker's task socket binds")
	fs.IntVar(&harmonyOpts.concurrency, "harmony-concurrency", runtime.NumCPU(), "tasks the Harmony worker runs at once")
}

// harmonyWorkersReply is the admin API's answer to GET /harmony/workers.
type harmonyWorkersReply struct {
	// Workers are the task endpoints, this logd's own included; on a mesh
	// closed with CURVE, with their keys ("ep|key").
	Workers []string `json:"workers"`
	Host    string   `json:"host"` // the host peers reach this logd at
}

func startHarmony(_ context.Context, d *daemon) (func(), error) {
	mailboxHost := func() string {
		if u, err := url.Parse(d.node.Endpoint()); err == nil {
			if h, _, err := net.SplitHostPort(u.Host); err == nil {
				return h
			}
		}
		return ""
	}
	var self func() string
	var w *harmony.Worker
	if harmonyOpts.enabled {
		var err error
		wcfg := harmony.WorkerConfig{
			Endpoint:    "tcp://" + harmonyOpts.bind,
			Concurrency: harmonyOpts.concurrency,
			Log:         d.log.With().Str("room", "harmony").Logger(),
		}
		if d.curve != nil {
			// --keys: only admitted nodes' ventilators reach the task
			// socket, and results go only to admitted collectors.
			wcfg.Keys, wcfg.Authorize = &d.curve.Keys, d.curve.Authorize
		}
		w, err = harmony.NewWorker(wcfg)
		if err != nil {
			return nil, err
		}
		d.node.SetHeader(harmony.Header, mesh.ServiceEndpoint(w.Endpoint()))
		if err := d.node.Join(harmony.Group); err != nil {
			w.Close()
			return nil, err
		}
		self = func() string {
			ep := mesh.ResolveEndpoint(w.Endpoint(), d.node.Endpoint())
			if d.curve != nil {
				ep = harmony.KeyedEndpoint(ep, d.curve.Keys.Public)
			}
			return ep
		}
		d.admin.HandleFunc("GET /harmony/stats", func(rw http.ResponseWriter, _ *http.Request) {
			writeJSON(rw, w.Stats())
		})
		d.log.Info().Str("endpoint", w.Endpoint()).Msg("harmony worker ready")
	}
	harmonyBatches.register(d.admin)
	d.admin.HandleFunc("GET /harmony/workers", func(rw http.ResponseWriter, _ *http.Request) {
		src := harmony.MeshWorkers{Dir: d.node}
		if d.curve != nil {
			src.Authorize = d.curve.Authorize // endpoints carry the workers' keys
		}
		if self != nil {
			src.Self = self()
		}
		writeJSON(rw, harmonyWorkersReply{Workers: src.WorkerEndpoints(), Host: mailboxHost()})
	})
	return func() {
		if w != nil {
			w.Close()
		}
	}, nil
}

type reprocessFlags struct {
	dataDir     string
	from        listFlag
	archives    bool
	filter      string
	countBy     string
	convert     string
	out         string
	workers     listFlag
	local       int
	advertise   string
	chunkLines  int
	taskTimeout time.Duration
	progress    string
	showBad     int
	keys        string
}

func runReprocess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f reprocessFlags
	fs := newFlagSet("reprocess", "Re-runs a filter, a count or a conversion over log archives (plain or gzip), spread over the\n"+
		"Harmony workers of the mesh. The output is in source order and identical to a\n"+
		"single-process run; a worker that dies midway changes nothing but the time.\n\n"+
		"  logd reprocess --from /var/log/app --filter 'level>=warn service=api msg~timeout' --out warn.ndjson\n"+
		"  logd reprocess --archives --count-by level,service,minute\n"+
		"  logd reprocess --from old/ --convert 'logfmt time,level,service,message' --out old.logfmt", stderr)
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "data directory of the local logd (its admin socket, its archives)")
	fs.Var(&f.from, "from", "file or directory tree of archives to read (repeatable)")
	fs.BoolVar(&f.archives, "archives", false, "read the archive tree the local logd collects (its --collect directory)")
	fs.StringVar(&f.filter, "filter", "", "keep matching lines: terms level>=warn service=api msg~regexp field=value field!=value")
	fs.StringVar(&f.countBy, "count-by", "", "count lines per key tuple, e.g. level,service,minute (NDJSON table)")
	fs.StringVar(&f.convert, "convert", "", "rewrite every line: logfmt, or logfmt with a field list (logfmt time,level,message)")
	fs.StringVar(&f.out, "out", "-", "output file (written atomically), - for stdout")
	fs.Var(&f.workers, "workers", "worker task endpoints tcp://host:port, or tcp://host:port|KEY with --keys (default: the mesh's, asked from the local logd)")
	fs.StringVar(&f.keys, "keys", "", "key directory of the local logd (its --keys): on a mesh closed with CURVE, the batch's sockets use its keys")
	fs.IntVar(&f.local, "local", 0, "run this many workers in this process instead of the mesh's")
	fs.StringVar(&f.advertise, "advertise", "", "host workers reach this process at (default: the local logd's mesh host)")
	fs.IntVar(&f.chunkLines, "chunk-lines", 2000, "lines per task")
	fs.DurationVar(&f.taskTimeout, "task-timeout", 10*time.Second, "time a worker may hold a task before it goes to another")
	fs.StringVar(&f.progress, "progress", "auto", "progress on stderr: auto (bar on a terminal, else lines), bar, plain, none")
	fs.IntVar(&f.showBad, "show-bad", 20, "how many bad input lines to list on stderr (all are counted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "logd reprocess: "+format+"\n", a...)
		return errUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	given := 0
	for _, s := range []string{f.filter, f.countBy, f.convert} {
		if s != "" {
			given++
		}
	}
	var spec string
	switch {
	case given > 1:
		return usageErr("give one of --filter, --count-by, --convert")
	case f.countBy != "":
		spec = "count-by " + f.countBy
	case f.convert != "":
		spec = "convert " + f.convert
	default:
		spec = strings.TrimSpace("filter " + f.filter)
	}
	job, err := harmony.ParseSpec(spec)
	if err != nil {
		return usageErr("%v", err)
	}
	sources := append([]string(nil), f.from...)
	if f.archives {
		var st shipStatus
		if err := newAdminClient(f.dataDir).do(ctx, http.MethodGet, "/filemq/status", nil, &st); err != nil {
			return fmt.Errorf("--archives: %w", err)
		}
		if st.Collecting == nil || st.Collecting.Dir == "" {
			return errors.New("--archives: the local logd collects no archives (start it with --collect DIR)")
		}
		sources = append(sources, st.Collecting.Dir)
	}
	if len(sources) == 0 {
		return usageErr("nothing to read: give --from DIR or --archives")
	}
	switch f.progress {
	case "auto", "bar", "plain", "none":
	default:
		return usageErr("--progress: want auto, bar, plain or none, got %q", f.progress)
	}

	tasks, srcBad, err := harmony.LoadSources(sources, harmony.SourceOptions{ChunkLines: f.chunkLines})
	if err != nil {
		return err
	}
	var keys *harmonyKeys
	if f.keys != "" {
		kp, allow, err := curve.LoadKeyDir(f.keys)
		if err != nil {
			return fmt.Errorf("--keys: %w", err)
		}
		keys = &harmonyKeys{pair: kp, allow: allow}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers, host, stopWorkers, err := reprocessWorkers(ctx, f, keys, stderr)
	if err != nil {
		return err
	}
	defer stopWorkers()

	out, commit, err := openOutput(f.out, stdout)
	if err != nil {
		return err
	}
	defer commit(false)
	id := harmony.NewBatchID()
	cfg := harmony.RunConfig{Batch: id, Job: job, Tasks: tasks, Out: out, Workers: workers,
		CollectorEndpoint: "tcp://127.0.0.1:0", TaskTimeout: f.taskTimeout}
	if keys != nil {
		cfg.Keys, cfg.Authorize = &keys.pair, keys.allow.Authorize
	}
	if host != "" && host != "127.0.0.1" {
		cfg.CollectorEndpoint, cfg.AdvertiseHost = "tcp://0.0.0.0:0", host
	}
	printer := progressPrinter(f.progress, stderr)
	reporter := newBatchReporter(newAdminClient(f.dataDir), id)
	cfg.Progress = func(p harmony.Progress) {
		if printer != nil {
			printer.Print(p)
		}
		reporter.progress(p)
	}
	rep, err := harmony.Run(ctx, cfg)
	if err != nil {
		reporter.failed(err)
		return err
	}
	if err := commit(true); err != nil {
		return err
	}
	reportBad(stderr, rep, srcBad, f.showBad)
	fmt.Fprintf(stderr, "reprocess: %d tasks, %d lines, %d bad lines, %d unreadable parts of files\n",
		rep.Tasks, rep.Lines, rep.Bad, len(srcBad))
	return nil
}

// reprocessWorkers returns where the tasks go and the host workers reach
// the collector at: the --workers list, --local workers in this process,
// or the mesh's workers as the local logd sees them (asked again every
// 2 s, so workers that leave or join are noticed).
func reprocessWorkers(ctx context.Context, f reprocessFlags, keys *harmonyKeys, stderr io.Writer) (harmony.WorkerSource, string, func(), error) {
	host := f.advertise
	if len(f.workers) > 0 {
		if host == "" {
			host = "127.0.0.1"
		}
		return harmony.StaticWorkers(f.workers), host, func() {}, nil
	}
	if f.local == 0 {
		admin := newAdminClient(f.dataDir)
		var r harmonyWorkersReply
		err := admin.do(ctx, http.MethodGet, "/harmony/workers", nil, &r)
		keyed := func(ep string) bool { return strings.Contains(ep, "|") }
		if err == nil && keys == nil && slices.ContainsFunc(r.Workers, keyed) {
			return nil, "", nil, errors.New("the mesh's Harmony workers are closed with CURVE: give --keys DIR (the logd's key directory)")
		}
		if err == nil && keys != nil && len(r.Workers) > 0 && !slices.ContainsFunc(r.Workers, keyed) {
			// No downgrade: a keyed batch never talks to open workers.
			return nil, "", nil, errors.New("the mesh's Harmony workers are open (the local logd runs without --keys): run without --keys")
		}
		if err == nil && len(r.Workers) > 0 {
			if host == "" {
				host = r.Host
			}
			fmt.Fprintf(stderr, "reprocess: %d workers on the mesh\n", len(r.Workers))
			pw := &polledWorkers{eps: r.Workers}
			stop := pw.poll(ctx, admin)
			return pw, host, stop, nil
		}
		if err == nil {
			err = errors.New("no worker on the mesh")
		}
		f.local = runtime.NumCPU()
		fmt.Fprintf(stderr, "reprocess: %v; running %d workers here\n", err, f.local)
	}
	var ws []*harmony.Worker
	stop := func() {
		for _, w := range ws {
			w.Close()
		}
	}
	var eps harmony.StaticWorkers
	for range f.local {
		var wcfg harmony.WorkerConfig
		if keys != nil {
			wcfg.Keys, wcfg.Authorize = &keys.pair, keys.allow.Authorize
		}
		w, err := harmony.NewWorker(wcfg)
		if err != nil {
			stop()
			return nil, "", nil, err
		}
		ws = append(ws, w)
		ep := w.Endpoint()
		if keys != nil {
			ep = harmony.KeyedEndpoint(ep, keys.pair.Public)
		}
		eps = append(eps, ep)
	}
	return eps, "127.0.0.1", stop, nil
}

// harmonyKeys are `logd reprocess --keys`: the node's key pair and the
// keys it admits.
type harmonyKeys struct {
	pair  curve.KeyPair
	allow *curve.AllowList
}

// polledWorkers is a WorkerSource kept fresh from the local logd's admin
// API by its own goroutine, so the ventilator never waits on HTTP.
type polledWorkers struct {
	mu  sync.Mutex
	eps []string
}

func (p *polledWorkers) WorkerEndpoints() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eps
}

func (p *polledWorkers) poll(ctx context.Context, admin *adminClient) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var r harmonyWorkersReply
			if err := admin.do(ctx, http.MethodGet, "/harmony/workers", nil, &r); err == nil && len(r.Workers) > 0 {
				p.mu.Lock()
				p.eps = r.Workers
				p.mu.Unlock()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// openOutput returns the writer for --out and a commit function: for a
// file, output goes to a temporary file renamed into place on success.
func openOutput(path string, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if path == "-" {
		return stdout, func(bool) error { return nil }, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, fmt.Errorf("output: %w", err)
	}
	done := false
	return tmp, func(ok bool) error {
		if done {
			return nil
		}
		done = true
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil
		}
		if err := tmp.Close(); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("output %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("output %s: %w", path, err)
		}
		return nil
	}, nil
}

func progressPrinter(mode string, stderr io.Writer) *harmony.ProgressPrinter {
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	switch {
	case mode == "none":
		return nil
	case mode == "bar" || (mode == "auto" && tty):
		return &harmony.ProgressPrinter{W: stderr, TTY: true}
	default:
		return &harmony.ProgressPrinter{W: stderr}
	}
}

// reportBad lists the first bad input lines, unreadable files first.
func reportBad(w io.Writer, rep harmony.Report, srcBad []harmony.BadLine, max int) {
	all := append(append([]harmony.BadLine(nil), srcBad...), rep.BadLines...)
	for i, b := range all {
		if i == max {
			fmt.Fprintf(w, "reprocess: ... and %d more bad lines\n", int64(len(srcBad))+rep.Bad-int64(max))
			return
		}
		fmt.Fprintf(w, "reprocess: bad input %s:%d: %s\n", b.Source, b.Line, b.Reason)
	}
}
