package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// Collection from the mesh (--collect-logs): this logd subscribes to the
// log hub of every other logd (their X-LOGD-PUB header) and captures their
// events into its capture directory, <capture-dir>/<node>/<service>.log,
// rotated and compressed like its own (archives announced to FileMQ as
// service "<node>/<service>"). Collected events are captured, counted and
// queryable from the files; they are not published again by this logd's
// hub: logtail already reads every logd directly and would show them
// twice, and another collector would collect them again.

type collectFlags struct {
	enabled  bool
	dir      string
	level    string
	services listFlag
	nodes    listFlag
}

var clFlags collectFlags

// logCollector is the running collector, for the admin API and /metrics.
var (
	logCollectorMu sync.Mutex
	logCollector   *logpub.Collector
)

func runningLogCollector() *logpub.Collector {
	logCollectorMu.Lock()
	defer logCollectorMu.Unlock()
	return logCollector
}

func init() {
	registerComponent(component{name: "collect", needs: []string{"logpub"}, flags: collectFlagsRegister, start: startCollect})
	register(command{name: "collect", summary: "show what this logd collects from the mesh (run with --collect-logs)", run: runCollectStatus})
}

func collectFlagsRegister(fs *flag.FlagSet) {
	f := &clFlags
	fs.BoolVar(&f.enabled, "collect-logs", false,
		"collect the live logs of every other logd of the mesh into <collect-dir>/<node>/<service>.log (unlike --collect, which gathers FileMQ archives); resumes after any interruption without loss or duplicates, counts gaps the origins can no longer fill; collected events are not republished")
	fs.StringVar(&f.dir, "collect-dir", "", "directory of the collected captures (default: the capture directory)")
	fs.StringVar(&f.level, "collect-level", "", "collect only events of this level and above (trace, debug, info, warn, error, fatal, panic; default every event, with a level or without)")
	fs.Var(&f.services, "collect-service", "collect only this service (repeatable, or comma-separated; default all)")
	fs.Var(&f.nodes, "collect-node", "collect only from this node, by name or UUID (repeatable, or comma-separated; default all)")
}

func startCollect(ctx context.Context, d *daemon) (func(), error) {
	f := clFlags
	if !f.enabled {
		if f.dir != "" || len(f.services) > 0 || len(f.nodes) > 0 || f.level != "" {
			return nil, fmt.Errorf("--collect-dir, --collect-level, --collect-service and --collect-node need --collect-logs")
		}
		return func() {}, nil
	}
	cfg := logpub.DefaultCollectorConfig()
	if f.level != "" {
		lvl, err := zerolog.ParseLevel(f.level)
		if err != nil || lvl < zerolog.TraceLevel || lvl > zerolog.PanicLevel {
			return nil, fmt.Errorf("--collect-level %q: want trace, debug, info, warn, error, fatal or panic", f.level)
		}
		cfg.MinLevel, cfg.LevelSet = lvl, true
	}
	cfg.Self = d.node.UUID()
	cfg.Dir = f.dir
	if cfg.Dir == "" {
		cfg.Dir = lpFlags.captureDir
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(d.dataDir, "capture")
	}
	cfg.StateDir = d.dataDir
	cfg.Services, cfg.Nodes = f.services, f.nodes
	cfg.Log = d.log.With().Str("room", "collect").Logger()
	cfg.Capture = lpFlags.captureConfig(d, "collected capture archived")
	c, err := logpub.NewCollector(cfg)
	if err != nil {
		return nil, fmt.Errorf("--collect-logs: %w", err)
	}
	d.admin.HandleFunc("GET /collect/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, c.Stats())
	})
	logCollectorMu.Lock()
	logCollector = c
	logCollectorMu.Unlock()

	events := d.subscribe(256)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { // owned by the stop function below
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			c.SetPeers(meshLogHubs(d))
			select {
			case <-rctx.Done():
				return
			case _, ok := <-events:
				if !ok {
					<-rctx.Done()
					return
				}
			case <-t.C:
			}
		}
	}()
	d.log.Info().Str("dir", cfg.Dir).Str("level", f.level).Strs("services", f.services).Strs("nodes", f.nodes).
		Msg("collecting the mesh's logs")
	return func() {
		cancel()
		<-done
		logCollectorMu.Lock()
		logCollector = nil
		logCollectorMu.Unlock()
		if err := c.Close(); err != nil {
			d.log.Error().Err(err).Msg("collector close")
		}
	}, nil
}

// meshLogHubs lists the peers that advertise a log hub, with the endpoint
// to dial and, on a closed mesh, CURVE with our keys and theirs.
func meshLogHubs(d *daemon) []logpub.CollectorPeer {
	var l []logpub.CollectorPeer
	for _, p := range d.node.Peers() {
		pub := p.Headers["X-LOGD-PUB"]
		if pub == "" {
			continue
		}
		cp := logpub.CollectorPeer{ID: p.ID, Name: p.Name, Endpoint: mesh.ResolveEndpoint(pub, p.Endpoint)}
		if d.curve != nil {
			cp.Curve = &logpub.CurveClient{Keys: d.curve.Keys}
			if k, err := curve.ParsePublicKey(p.Headers["X-PUBLICKEY"]); err == nil {
				cp.Curve.Server = k
			} // else the subscription fails and is retried, never in plaintext
		}
		l = append(l, cp)
	}
	return l
}

func runCollectStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("collect", "Shows what the local logd (run with --collect-logs) collects from the mesh:\n"+
		"per origin node, the events captured, dropped as repeats, and missed (gaps the origin could no longer fill).", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var st logpub.CollectorStats
	if err := newAdminClient(*dataDir).do(ctx, http.MethodGet, "/collect/stats", nil, &st); err != nil {
		if strings.Contains(err.Error(), "404") {
			return fmt.Errorf("this logd does not collect (start it with --collect-logs): %w", err)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "collected %d, filtered %d, deduped %d, missed %d in %d gaps, capture errors %d, resumes %d\n\n",
		st.Collected, st.Filtered, st.Deduped, st.Missed, st.Gaps, st.CaptureErrors, st.Resumes)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORIGIN\tUUID\tSTATE\tSOURCES\tCOLLECTED\tDEDUPED\tMISSED\tLAST ERROR")
	for _, o := range st.Origins {
		state := "gone"
		switch {
		case o.Connected:
			state = "connected"
		case o.Present:
			state = "retrying"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", o.Name, o.Node, state, o.Sources, o.Collected, o.Deduped, o.Missed, o.LastError)
	}
	return tw.Flush()
}

// collectMetrics exports the collector's counters on the dashboard's
// /metrics (nothing while this logd does not collect).
type collectMetrics struct{}

var (
	descCollectEvents = prometheus.NewDesc("logmesh_collect_events_total",
		"Events of other logds seen by this collector, by result (collected, filtered, deduped, missed).", []string{"result"}, nil)
	descCollectGaps = prometheus.NewDesc("logmesh_collect_gaps_total",
		"Gaps found: runs of events no longer available at their origin.", nil, nil)
	descCollectErrors = prometheus.NewDesc("logmesh_collect_capture_errors_total",
		"Failed capture writes of collected events (collected again after a resume).", nil, nil)
	descCollectOrigins = prometheus.NewDesc("logmesh_collect_origins",
		"Origin nodes known to the collector, by state (connected, other).", []string{"state"}, nil)
)

func (collectMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCollectEvents, descCollectGaps, descCollectErrors, descCollectOrigins} {
		ch <- d
	}
}

func (collectMetrics) Collect(ch chan<- prometheus.Metric) {
	c := runningLogCollector()
	if c == nil {
		return
	}
	st := c.Stats()
	for r, n := range map[string]uint64{"collected": st.Collected, "filtered": st.Filtered, "deduped": st.Deduped, "missed": st.Missed} {
		ch <- prometheus.MustNewConstMetric(descCollectEvents, prometheus.CounterValue, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(descCollectGaps, prometheus.CounterValue, float64(st.Gaps))
	ch <- prometheus.MustNewConstMetric(descCollectErrors, prometheus.CounterValue, float64(st.CaptureErrors))
	connected := 0
	for _, o := range st.Origins {
		if o.Connected {
			connected++
		}
	}
	ch <- prometheus.MustNewConstMetric(descCollectOrigins, prometheus.GaugeValue, float64(connected), "connected")
	ch <- prometheus.MustNewConstMetric(descCollectOrigins, prometheus.GaugeValue, float64(len(st.Origins)-connected), "other")
}
