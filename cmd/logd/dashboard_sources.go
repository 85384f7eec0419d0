package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/logmesh/logmesh/dashboard"
	"github.com/logmesh/logmesh/harmony"
	"github.com/logmesh/logmesh/timer"
)

// The dashboard reads the other components of this logd through their
// admin API, in process: the same JSON that `logd timer status` and `logd
// ship status` show, without the components knowing about each other.

// adminGet serves GET path from the admin mux in process and decodes it;
// ok is false when the component is not running here (404) or failed.
func (d *daemon) adminGet(path string, v any) bool {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	d.admin.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), v) == nil
}

// dashTimers is the timer service's state as the dashboard shows it.
type dashTimers struct{ d *daemon }

func (t dashTimers) TimerStatus() dashboard.TimerStatus {
	var snap timer.Snapshot
	st := dashboard.TimerStatus{Schedules: []dashboard.Schedule{}}
	if !t.d.adminGet("/timer", &snap) {
		return st
	}
	for _, tk := range snap.Ticks {
		st.Schedules = append(st.Schedules, dashboard.Schedule{Name: "tick " + tk.Period.String(), Kind: "tick",
			Spec: tk.Period.String(), Scope: "node", Fired: tk.Sent, Missed: tk.Dropped + tk.Skipped})
		st.TicksMissed += tk.Dropped + tk.Skipped
	}
	for _, s := range snap.Schedules {
		sc := dashboard.Schedule{Name: s.Spec.Name, Scope: string(s.Spec.Scope), Next: s.Next, Last: s.LastFired, Fired: s.Fires}
		switch {
		case s.Spec.Cron != "":
			sc.Kind, sc.Spec = "cron", s.Spec.Cron
		case s.Spec.Every != 0:
			sc.Kind, sc.Spec = "every", time.Duration(s.Spec.Every).String()
		default:
			sc.Kind, sc.Spec = "at", s.Spec.At.Format(time.RFC3339)
		}
		if s.Spec.Scope == timer.ScopeCluster && snap.Leader {
			sc.Owner = t.d.node.Name()
		}
		st.Schedules = append(st.Schedules, sc)
	}
	return st
}

// dashShipping is FileMQ archive shipping as the dashboard shows it: one
// row per collecting peer, with the file in flight.
type dashShipping struct{ d *daemon }

func (s dashShipping) ShippingStatus() dashboard.ShippingStatus {
	var ship shipStatus
	st := dashboard.ShippingStatus{Transfers: []dashboard.Transfer{}}
	if !s.d.adminGet("/filemq/status", &ship) || ship.Shipping == nil {
		return st
	}
	for _, c := range ship.Shipping.Clients {
		st.BytesShipped += c.Sent
		tr := dashboard.Transfer{Peer: c.ID, Path: c.Current, Sent: c.CurrentOffset, Size: c.CurrentSize}
		if c.Current == "" {
			tr.Path = fmt.Sprintf("%d files shipped, %d pending", c.ShippedFiles, c.PendingFiles)
			tr.Done = c.PendingFiles == 0
			tr.Sent, tr.Size = int64(c.Sent), int64(c.Sent)+c.PendingBytes
		}
		st.Transfers = append(st.Transfers, tr)
	}
	return st
}

// dashBatches shows the batches that `logd reprocess` runs reported to this
// logd (their progress), then this node's Harmony worker and its counters.
type dashBatches struct{ d *daemon }

func (b dashBatches) Batches() []dashboard.Batch {
	batches := harmonyBatches.Batches() // reported by `logd reprocess` runs
	var ws harmony.WorkerStats
	if !b.d.adminGet("/harmony/stats", &ws) {
		return batches
	}
	return append(batches, dashboard.Batch{ID: "worker on " + b.d.node.Name(), Tasks: int(ws.Tasks) + ws.Queued,
		Done: int(ws.Tasks), Workers: 1})
}

// dashTicks paces the dashboard's graphs with the timer service's ticks.
// Until its X-TIMER header is set (the timer may be disabled or fail), and
// whenever its client is down, a wall-aligned local ticker stands in.
type dashTicks struct{ d *daemon }

func (tt dashTicks) SubscribeTicks(period time.Duration, deliver func(dashboard.Tick)) (cancel func()) {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if ep := tt.d.node.Self().Headers["X-TIMER"]; ep != "" {
				tt.follow(ctx, ep, period, deliver)
			}
			tt.wallTicks(ctx, period, deliver, 10) // a second of local ticks, then look again
		}
	}()
	return func() { stop(); wg.Wait() }
}

// follow delivers the service's ticks until ctx ends or the client fails.
func (tt dashTicks) follow(ctx context.Context, ep string, period time.Duration, deliver func(dashboard.Tick)) {
	c, err := timer.NewClient(tt.d.timerClientConfig(ep, tt.d.log.With().Str("room", "dashboard").Logger()))
	if err != nil {
		return
	}
	defer c.Close()
	ticks, err := c.Ticks(ctx, period)
	if err != nil {
		return
	}
	for t := range ticks {
		deliver(dashboard.Tick{N: uint64(t.N), At: t.At, Missed: uint64(t.Missed)})
	}
}

// wallTicks delivers n local wall-aligned ticks.
func (tt dashTicks) wallTicks(ctx context.Context, period time.Duration, deliver func(dashboard.Tick), n int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	left := n
	_ = timer.Every(ctx, period, func(k int64, at time.Time, missed int64) {
		deliver(dashboard.Tick{N: uint64(k), At: at, Missed: uint64(missed)})
		if left--; left == 0 {
			cancel()
		}
	})
}
