package harmony

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for the condition
	}
}

func TestMillionLinesThreeWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("1M lines")
	}
	lines := 1_000_000
	if raceEnabled {
		lines = 100_000 // see race_on_test.go; the full million runs without -race
	}
	data := genLines(lines, 11)
	tasks := cut(data, "million.log", 4000)
	job := mustJob(t, "filter level>=warn msg~timeout|retry")
	start := time.Now()
	want, wantRep := localRun(t, job, tasks)
	t.Logf("local run: %v, %d bytes out", time.Since(start), len(want))
	start = time.Now()
	ws := startWorkers(t, 3)
	got, rep := distRun(t, job, tasks, endpoints(ws), VentilatorConfig{})
	t.Logf("3 workers: %v", time.Since(start))
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs: %d bytes vs %d", len(got), len(want))
	}
	if rep.Lines != int64(lines) || wantRep.Lines != int64(lines) {
		t.Fatalf("lines %d / %d", rep.Lines, wantRep.Lines)
	}
	for i, w := range ws {
		if w.Stats().Tasks == 0 {
			t.Errorf("worker %d got no task", i)
		}
	}
}

func TestCountByOverWorkers(t *testing.T) {
	data := genLines(50_000, 12)
	tasks := cut(data, "c.log", 2000)
	job := mustJob(t, "count-by level,service,minute")
	want, _ := localRun(t, job, tasks)
	ws := startWorkers(t, 2)
	got, _ := distRun(t, job, tasks, endpoints(ws), VentilatorConfig{})
	if !bytes.Equal(got, want) {
		t.Fatalf("count-by differs:\n%.500s\nvs\n%.500s", got, want)
	}
}

func TestKillWorkerMidBatch(t *testing.T) {
	procs := []*workerProc{startWorkerProc(t), startWorkerProc(t), startWorkerProc(t)}
	eps := StaticWorkers{procs[0].ep, procs[1].ep, procs[2].ep}
	data := genLines(80_000, 13)
	tasks := cut(data, "k.log", 200)
	job := mustJob(t, "filter level>=info service!=db")
	want, _ := localRun(t, job, tasks)

	id := newBatchID()
	out := newSyncBuffer()
	c, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: out, ResendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: job, Tasks: tasks, Collector: c.Endpoint(),
		Workers: eps, TaskTimeout: time.Second, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Kill a worker while it holds tasks, a quarter of the way in.
	waitFor(t, "a quarter of the batch", 30*time.Second, func() bool {
		return c.Committed() >= uint32(len(tasks)/4) && v.Stats().InFlight[eps[1]] > 0
	})
	procs[1].kill(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("batch did not complete: %v (%+v, %+v)", err, c.Stats(), v.Stats())
	}
	if got := out.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("output differs after a worker died: %d bytes vs %d", len(got), len(want))
	}
	if rep.Tasks != len(tasks) || rep.Lines != 80_000 {
		t.Fatalf("report %+v: gaps or duplicates", rep)
	}
	vs := v.Stats()
	if vs.Timeouts+vs.Lost == 0 {
		t.Errorf("no task was sent again, yet a worker died holding tasks: %+v", vs)
	}
	t.Logf("ventilator %+v, collector %+v", vs, c.Stats())
}

func TestTwoVentilatorsShareWorkers(t *testing.T) {
	ws := endpoints(startWorkers(t, 3))
	type batch struct {
		job   Job
		tasks []Task
		want  []byte
		got   []byte
	}
	b1 := &batch{job: mustJob(t, "filter level=error")}
	b2 := &batch{job: mustJob(t, "count-by service,minute")}
	b1.tasks = cut(genLines(30_000, 21), "one.log", 300)
	b2.tasks = cut(genLines(40_000, 22), "two.log", 350)
	for _, b := range []*batch{b1, b2} {
		b.want, _ = localRun(t, b.job, b.tasks)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b1.got, _ = distRun(t, b1.job, b1.tasks, ws, VentilatorConfig{})
	}()
	b2.got, _ = distRun(t, b2.job, b2.tasks, ws, VentilatorConfig{})
	<-done
	for i, b := range []*batch{b1, b2} {
		if !bytes.Equal(b.got, b.want) {
			t.Errorf("batch %d differs: %d bytes vs %d", i+1, len(b.got), len(b.want))
		}
	}
}

func TestRestartCollectorMidBatch(t *testing.T) {
	ws := endpoints(startWorkers(t, 2))
	tasks := cut(genLines(80_000, 31), "r.log", 250)
	job := mustJob(t, "filter service=api")
	want, _ := localRun(t, job, tasks)

	id := newBatchID()
	out := newSyncBuffer()
	c1, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: out, ResendTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ep := c1.Endpoint()
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: job, Tasks: tasks, Collector: ep,
		Workers: ws, TaskTimeout: 2 * time.Second, Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "a third of the batch", 30*time.Second, func() bool { return c1.Committed() >= uint32(len(tasks)/3) })
	c1.Close()
	resume := c1.Committed()
	if resume >= uint32(len(tasks)) {
		t.Fatal("batch finished before the restart; make it bigger")
	}
	c2, err := NewCollector(CollectorConfig{Endpoint: ep, Batch: id, Job: job, Out: out,
		StartAt: resume, ResendTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c2.Wait(ctx); err != nil {
		t.Fatalf("restarted collector: %v (%+v, %+v)", err, c2.Stats(), v.Stats())
	}
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("ventilator did not see the end: %v", err)
	}
	if got := out.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("output differs after a collector restart: %d bytes vs %d", len(got), len(want))
	}
	t.Logf("resumed at %d of %d; collector %+v", resume, len(tasks), c2.Stats())
}

// TestStalledWorker stops a worker process (SIGSTOP) while it holds tasks:
// its connection stays up but it answers nothing, so its tasks time out and
// go to the other worker. Closing the ventilator does not wait for it.
func TestStalledWorker(t *testing.T) {
	procs := []*workerProc{startWorkerProc(t), startWorkerProc(t)}
	eps := StaticWorkers{procs[0].ep, procs[1].ep}
	tasks := cut(genLines(30_000, 81), "s.log", 150)
	job := mustJob(t, "count-by level,service")
	want, _ := localRun(t, job, tasks)
	id := newBatchID()
	out := newSyncBuffer()
	c, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: out, ResendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: job, Tasks: tasks, Collector: c.Endpoint(),
		Workers: eps, TaskTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "the worker to hold tasks", 30*time.Second, func() bool {
		return c.Committed() > 0 && v.Stats().InFlight[eps[1]] > 0
	})
	if err := procs[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { procs[1].cmd.Process.Signal(syscall.SIGCONT) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Wait(ctx); err != nil {
		t.Fatalf("batch did not complete: %v (%+v, %+v)", err, c.Stats(), v.Stats())
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("output differs with a stalled worker")
	}
	if vs := v.Stats(); vs.Timeouts == 0 {
		t.Errorf("no task timed out: %+v", vs)
	}
}
