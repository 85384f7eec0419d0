package main

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// demoEnabled is --demo: three made-up apps log into this logd, so a first
// run shows the dashboard's graphs and logtail at work.
var demoEnabled bool

func init() {
	registerComponent(component{
		name:  "demo",
		needs: []string{"logpub"},
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&demoEnabled, "demo", false, "run demo apps (api, db, worker) that log into this logd, about 30 events/s")
		},
		start: startDemo,
	})
}

// demoApp is one made-up service: what it logs and how often.
type demoApp struct {
	service string
	every   time.Duration
	log     func(l zerolog.Logger, r *rand.Rand, n int)
}

var demoApps = []demoApp{
	{"api", 50 * time.Millisecond, func(l zerolog.Logger, r *rand.Rand, n int) {
		paths := []string{"/login", "/orders", "/orders/42", "/health", "/search"}
		status := []int{200, 200, 200, 200, 201, 304, 404, 500}[r.IntN(8)]
		ev := l.Info()
		switch {
		case status >= 500:
			ev = l.Error()
		case status >= 400:
			ev = l.Warn()
		}
		ev.Str("path", paths[r.IntN(len(paths))]).Int("status", status).
			Dur("took", time.Duration(r.IntN(80_000))*time.Microsecond).Int("req", n).Msg("request")
	}},
	{"db", 150 * time.Millisecond, func(l zerolog.Logger, r *rand.Rand, n int) {
		ms := r.IntN(300)
		if ms > 250 {
			l.Warn().Int("ms", ms).Str("table", "orders").Msg("slow query")
			return
		}
		l.Debug().Int("ms", ms).Str("table", "users").Int("query", n).Msg("query")
	}},
	{"worker", 400 * time.Millisecond, func(l zerolog.Logger, r *rand.Rand, n int) {
		if r.IntN(20) == 0 {
			l.Error().Int("job", n).Str("err", "upstream timeout").Msg("job failed")
			return
		}
		l.Info().Int("job", n).Int("items", r.IntN(500)).Msg("job done")
	}},
}

func startDemo(ctx context.Context, d *daemon) (func(), error) {
	if !demoEnabled {
		return func() {}, nil
	}
	hub := runningLogHub()
	if hub == nil || hub.WriterEndpoint() == "" {
		return nil, errors.New("--demo needs the writer endpoint (--writer-endpoint is empty)")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var writers []*logpub.Writer
	for i, app := range demoApps {
		w := logpub.NewWriter(logpub.WriterOptions{Endpoint: hub.WriterEndpoint(), Service: app.service})
		writers = append(writers, w)
		l := zerolog.New(w).With().Timestamp().Str("app", app.service).Logger()
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(app.every)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					app.log(l, r, n)
				}
			}
		}()
	}
	d.log.Info().Int("apps", len(demoApps)).Msg("demo apps logging into this logd")
	return func() {
		cancel()
		wg.Wait()
		for _, w := range writers {
			_ = w.Close()
		}
	}, nil
}
