package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/dashboard"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// dashboardFlags are the dashboard's flags on `logd run`.
type dashboardFlags struct {
	addr    string
	token   string
	cluster bool
}

var dbFlags dashboardFlags

func init() {
	// After the hub and the timer, so the first page already has them; the
	// sources still look them up per call and cope with their absence.
	registerComponent(component{name: "dashboard", needs: []string{"logpub", "timer"},
		flags: dashboardFlagsRegister, start: startDashboard})
}

func dashboardFlagsRegister(fs *flag.FlagSet) {
	fs.StringVar(&dbFlags.addr, "http", dashboard.DefaultAddr,
		"host:port of the web dashboard and HTTP bridge (\"\" disables); off loopback a bearer token is required")
	fs.StringVar(&dbFlags.token, "http-token", "",
		"bearer token of the dashboard (default: none on loopback, else generated and printed at start)")
	fs.BoolVar(&dbFlags.cluster, "http-cluster", false,
		"graph and tail every node of the mesh, not only this one (this logd then receives every peer's events)")
}

func startDashboard(ctx context.Context, d *daemon) (func(), error) {
	f := dbFlags
	if f.addr == "" {
		return func() {}, nil
	}
	cfg := dashboard.DefaultConfig()
	cfg.Addr, cfg.Token = f.addr, f.token
	local := hubSource{node: d.node.Name()}
	cfg.Logs = local
	var cluster *clusterLogs
	if f.cluster {
		cluster = startClusterLogs(d, local)
		cfg.Logs = cluster
	}
	stopCluster := func() {
		if cluster != nil {
			cluster.close()
		}
	}
	cfg.Peers = d.node
	cfg.Ticks = dashTicks{d: d}
	cfg.Timers = dashTimers{d: d}
	cfg.Shipping = dashShipping{d: d}
	cfg.Batches = dashBatches{d: d}
	cfg.Logger = d.log.With().Str("room", "dashboard").Logger()
	srv, err := dashboard.New(cfg)
	if err != nil {
		stopCluster()
		return nil, err
	}
	if err := srv.Registry().Register(collectMetrics{}); err != nil { // collect.go
		d.log.Warn().Err(err).Msg("collector metrics not exported")
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		stopCluster()
		if errors.Is(err, syscall.EADDRINUSE) && f.addr == dashboard.DefaultAddr {
			// Another logd on this host has the default port: run without
			// a dashboard rather than not at all.
			d.log.Warn().Err(err).Msg("dashboard port in use; starting without dashboard (set --http)")
			return func() {}, nil
		}
		return nil, err
	}
	d.node.SetHeader("X-HTTP", mesh.ServiceEndpoint(srv.Addr()))
	if tok := srv.Token(); tok != "" && f.token == "" {
		// Generated: this is the only place it is shown.
		d.log.Info().Str("url", srv.URL()).Str("token", tok).Msg("dashboard started")
	} else {
		d.log.Info().Str("url", "http://"+srv.Addr()+"/").Bool("token_required", tok != "").Msg("dashboard started")
	}
	return func() {
		if err := srv.Close(); err != nil {
			d.log.Error().Err(err).Msg("dashboard close")
		}
		stopCluster()
	}, nil
}

// hubSource is the log hub as the dashboard reads it. The hub is looked up
// at each call: it is nil before the hub starts and after it stops.
type hubSource struct{ node string }

var errNoHub = errors.New("log hub not running")

func (s hubSource) Subscribe(f dashboard.Filter, deliver func(*dashboard.Event)) (cancel func()) {
	h := runningLogHub()
	if h == nil {
		return func() {}
	}
	var lf logpub.Filter
	if f.Level != "" {
		if lvl, err := zerolog.ParseLevel(f.Level); err == nil {
			lf = lf.AtLeast(lvl) // explicit: "debug" must not pass trace
		}
	}
	if f.Service != "" {
		lf.Services = []string{f.Service}
	}
	if f.Node != "" {
		lf.Nodes = []string{f.Node}
	}
	sub, err := h.Subscribe(lf, time.Time{}, 1024)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() { // owned by cancel; ends when the subscription or the hub closes
		defer close(done)
		for ev := range sub.Events() {
			e := dashboard.Event{Time: ev.Received, Node: s.node, Service: ev.Service,
				Level: ev.Level.String(), Seq: ev.Seq, Line: bytes.TrimSuffix(ev.Line, []byte{'\n'})}
			deliver(&e)
		}
	}()
	return func() { sub.Close(); <-done }
}

func (s hubSource) Ingest(service string, line []byte) error {
	h := runningLogHub()
	if h == nil {
		return errNoHub
	}
	return h.Ingest(service, line)
}

func (s hubSource) Stats() dashboard.LogStats {
	st := dashboard.LogStats{Levels: map[string]dashboard.LevelStats{}, Nodes: map[string]uint64{}}
	h := runningLogHub()
	if h == nil {
		return st
	}
	hs := h.Stats()
	for l, n := range hs.ByLevel {
		st.Levels[l] = dashboard.LevelStats{In: n}
	}
	st.Nodes[s.node] = hs.Received
	st.Rejected, st.Out, st.Dropped = hs.Rejected, hs.Delivered, hs.SubscriberDrops
	st.ShedPending, st.ShedHandshakes = hs.Shed, hs.ShedHandshakes
	return st
}
