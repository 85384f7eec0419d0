package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// logpubFlags are the log hub's flags on `logd run`.
type logpubFlags struct {
	captureDir     string
	shared         string
	rotateSize     sizeFlag
	rotateEvery    time.Duration
	maxBackups     int
	maxAge         time.Duration
	noCompress     bool
	ringEvents     int
	ringMB         int
	writerEndpoint string
	pubBind        string
}

var lpFlags = logpubFlags{rotateSize: 100 << 20}

// logHub is the running hub, for the components that read from it (the
// dashboard's live feed and counters, the HTTP bridge's Ingest, FileMQ's
// archive announcements through onArchive).
var (
	logHubMu  sync.Mutex
	logHub    *logpub.Hub
	onArchive []func(path, service string)
)

// runningLogHub returns the running log hub, or nil before it started.
func runningLogHub() *logpub.Hub {
	logHubMu.Lock()
	defer logHubMu.Unlock()
	return logHub
}

// addArchiveListener registers fn to be told of every completed capture
// archive (FileMQ ships them). Call it from a component's start.
func addArchiveListener(fn func(path, service string)) {
	logHubMu.Lock()
	defer logHubMu.Unlock()
	onArchive = append(onArchive, fn)
}

func init() {
	registerComponent(component{name: "logpub", flags: logpubFlagsRegister, start: startLogpub})
}

func logpubFlagsRegister(fs *flag.FlagSet) {
	f := &lpFlags
	fs.StringVar(&f.captureDir, "capture-dir", "", "directory of the capture files (default <data-dir>/capture)")
	fs.StringVar(&f.shared, "capture-shared", "", "capture every service into one file <name>.log instead of one file per service")
	fs.Var(&f.rotateSize, "rotate-size", "rotate a capture file before it exceeds this size (e.g. 100MiB, 512KB, 1048576)")
	fs.DurationVar(&f.rotateEvery, "rotate-every", time.Hour, "also rotate on wall-clock boundaries of this period (0 disables)")
	fs.IntVar(&f.maxBackups, "max-backups", 0, "rotated files kept per capture file (0 keeps all)")
	fs.DurationVar(&f.maxAge, "max-age", 0, "remove rotated files older than this, rounded up to days (0 keeps all)")
	fs.BoolVar(&f.noCompress, "no-compress", false, "keep rotated capture files uncompressed")
	fs.IntVar(&f.ringEvents, "ring-events", 50_000, "events kept in memory for logtail --since")
	fs.IntVar(&f.ringMB, "ring-mb", 16, "MiB kept in memory for logtail --since")
	fs.StringVar(&f.writerEndpoint, "writer-endpoint", logpub.DefaultWriterEndpoint, "where local apps' logpub writers connect (\"\" disables)")
	fs.StringVar(&f.pubBind, "pub-bind", "tcp://0.0.0.0:0", "where logtail and other logds subscribe; advertised as X-LOGD-PUB")
}

// captureConfig is the rotation and archiving of capture files set by the
// flags, for the hub's own captures and the collector's: rotated archives
// are logged with msg and announced to every archive listener (FileMQ).
func (f logpubFlags) captureConfig(d *daemon, msg string) logpub.CaptureConfig {
	return logpub.CaptureConfig{
		MaxSize:     int64(f.rotateSize),
		RotateEvery: f.rotateEvery,
		MaxBackups:  f.maxBackups,
		MaxAge:      int((f.maxAge + 24*time.Hour - 1) / (24 * time.Hour)),
		NoCompress:  f.noCompress,
		OnArchive: func(path, service string) {
			d.log.Info().Str("file", path).Str("service", service).Msg(msg)
			logHubMu.Lock()
			fns := append([]func(string, string){}, onArchive...)
			logHubMu.Unlock()
			for _, fn := range fns {
				fn(path, service)
			}
		},
	}
}

func startLogpub(ctx context.Context, d *daemon) (func(), error) {
	f := lpFlags
	cfg := logpub.DefaultHubConfig()
	cfg.Node, cfg.NodeName = d.node.UUID(), d.node.Name()
	cfg.Log = d.log.With().Str("room", "logpub").Logger()
	cfg.WriterEndpoint, cfg.PubEndpoint = f.writerEndpoint, f.pubBind
	cfg.RingEvents, cfg.RingBytes = f.ringEvents, f.ringMB<<20
	cfg.Capture = f.captureConfig(d, "capture archived")
	cfg.Capture.Dir, cfg.Capture.Shared = f.captureDir, f.shared
	if cfg.Capture.Dir == "" {
		cfg.Capture.Dir = filepath.Join(d.dataDir, "capture")
	}
	if d.curve != nil {
		// The mesh keys close the log streams too: subscribers, queries
		// and remote writers; peers know our key from X-PUBLICKEY.
		cfg.Curve = &logpub.CurveServer{Keys: d.curve.Keys, Authorize: d.curve.Authorize}
	}
	h, err := startHub(ctx, cfg)
	if err != nil && cfg.WriterEndpoint != "" && errors.Is(err, syscall.EADDRINUSE) {
		// Another logd on this host holds the well-known writer endpoint:
		// take an ephemeral loopback port (logged; apps must be given it)
		// rather than not serving at all.
		cfg.WriterEndpoint = "tcp://127.0.0.1:0"
		h, err = startHub(ctx, cfg)
		if err == nil {
			d.log.Warn().Str("wanted", f.writerEndpoint).Str("writers", h.WriterEndpoint()).
				Msg("local writer endpoint in use; apps must set LOGPUB_ENDPOINT to reach this logd")
		}
	}
	if err != nil {
		return nil, err
	}
	// One endpoint serves live streams and --since queries.
	d.node.SetHeader("X-LOGD-PUB", mesh.ServiceEndpoint(h.PubEndpoint()))
	d.node.SetHeader("X-LOGD-QUERY", mesh.ServiceEndpoint(h.PubEndpoint()))
	d.admin.HandleFunc("GET /logpub/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.Stats())
	})
	d.admin.HandleFunc("GET /logpub/curve", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.CurveStats())
	})
	logHubMu.Lock()
	logHub = h
	logHubMu.Unlock()
	d.log.Info().Str("writers", h.WriterEndpoint()).Str("pub", h.PubEndpoint()).Str("capture", cfg.Capture.Dir).
		Bool("curve", cfg.Curve != nil).Msg("log hub started")
	return func() {
		logHubMu.Lock()
		logHub = nil
		logHubMu.Unlock()
		if err := h.Close(); err != nil {
			d.log.Error().Err(err).Msg("log hub close")
		}
	}, nil
}

func startHub(ctx context.Context, cfg logpub.HubConfig) (*logpub.Hub, error) {
	h, err := logpub.NewHub(cfg)
	if err != nil {
		return nil, err
	}
	if err := h.Start(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// sizeFlag is a byte size: 1048576, 512KB, 100MiB, 1G.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	i := len(v)
	for i > 0 && (v[i-1] < '0' || v[i-1] > '9') {
		i--
	}
	n, err := strconv.ParseInt(v[:i], 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("size %q: want a positive number with an optional unit (KB, MiB, G...)", v)
	}
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[strings.ToLower(v[i:])]
	if mult == 0 {
		return fmt.Errorf("size %q: unknown unit %q", v, v[i:])
	}
	*s = sizeFlag(n * mult)
	return nil
}
