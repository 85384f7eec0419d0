package harmony

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
)

// RunConfig configures Run: one batch driven from this process.
type RunConfig struct {
	// Batch names the batch (zero: a new random id).
	Batch   BatchID
	Job     Job
	Tasks   []Task
	Out     io.Writer
	Workers WorkerSource
	// CollectorEndpoint is where the collector binds (default
	// "tcp://127.0.0.1:0"); use "tcp://0.0.0.0:0" with AdvertiseHost when
	// workers run on other hosts.
	CollectorEndpoint string
	AdvertiseHost     string
	// InFlight, TaskTimeout and ResendTimeout: see VentilatorConfig and
	// CollectorConfig (zero: their defaults).
	InFlight      int
	TaskTimeout   time.Duration
	ResendTimeout time.Duration
	// Progress, if set, is called about every ProgressEvery (default 250 ms)
	// and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Keys and Authorize close the batch with CURVE: the collector admits
	// the workers whose keys Authorize admits, and the ventilator dials
	// the collector and the workers (whose endpoints carry their keys,
	// "ep|key") with Keys. Nil Keys: NULL sockets.
	Keys      *curve.KeyPair
	Authorize curve.AuthorizeFunc
	Log       zerolog.Logger
}

// Run runs one batch: a collector and a ventilator in this process, the
// workers wherever Workers says. It returns when the output is complete.
func Run(ctx context.Context, cfg RunConfig) (Report, error) {
	if len(cfg.Tasks) == 0 {
		return Report{}, cfg.Job.NewMerger(cfg.Out).Close()
	}
	id := cfg.Batch
	if id == (BatchID{}) {
		id = NewBatchID()
	}
	c, err := NewCollector(CollectorConfig{Endpoint: cfg.CollectorEndpoint, AdvertiseHost: cfg.AdvertiseHost,
		Batch: id, Job: cfg.Job, Out: cfg.Out, ResendTimeout: cfg.ResendTimeout, Log: cfg.Log,
		Keys: cfg.Keys, Authorize: cfg.Authorize})
	if err != nil {
		return Report{}, err
	}
	defer c.Close()
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: cfg.Job, Tasks: cfg.Tasks, Collector: c.Endpoint(),
		Workers: cfg.Workers, InFlight: cfg.InFlight, TaskTimeout: cfg.TaskTimeout, Log: cfg.Log, Keys: cfg.Keys})
	if err != nil {
		return Report{}, err
	}
	defer v.Close()
	every := cfg.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		rep Report
		err error
	}
	res := make(chan result, 1)
	go func() {
		rep, err := c.Wait(waitCtx)
		res <- result{rep, err}
	}()
	meter := NewProgressMeter(len(cfg.Tasks))
	for {
		select {
		case r := <-res:
			if cfg.Progress != nil {
				cfg.Progress(meter.Update(c.Stats(), v.Stats()))
			}
			if r.err != nil {
				return r.rep, fmt.Errorf("harmony: batch %v: %w", id, r.err)
			}
			return r.rep, nil
		case <-tick.C:
			if cfg.Progress != nil {
				cfg.Progress(meter.Update(c.Stats(), v.Stats()))
			}
		}
	}
}
