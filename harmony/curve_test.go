package harmony

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/curvetest"
)

// keyedWorkers starts n workers, each with its own key pair, admitting
// allow; it returns them and their keyed endpoints.
func keyedWorkers(t *testing.T, n int, allow *curve.AllowList) ([]*Worker, StaticWorkers) {
	t.Helper()
	var ws []*Worker
	var eps StaticWorkers
	for range n {
		kp := curvetest.KeyPair(t)
		allow.Add(kp.Public)
		w, err := NewWorker(WorkerConfig{DialWait: time.Second, Keys: &kp, Authorize: allow.Authorize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		ws = append(ws, w)
		eps = append(eps, KeyedEndpoint(w.Endpoint(), kp.Public))
	}
	return ws, eps
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func TestCurveBatch(t *testing.T) {
	data := genLines(5000, 7)
	tasks := cut(data, "gen.log", 250)
	job := mustJob(t, "filter level>=warn")
	want, _ := localRun(t, job, tasks)
	node := curvetest.KeyPair(t)
	allow := curve.NewAllowList(node.Public)
	ws, eps := keyedWorkers(t, 2, allow)
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, RunConfig{Job: job, Tasks: tasks, Out: &buf, Workers: eps, Keys: &node, Authorize: allow.Authorize})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) || rep.Tasks != len(tasks) {
		t.Fatalf("output %d bytes (want %d), report %+v", buf.Len(), len(want), rep)
	}
	for i, w := range ws {
		if st := w.Stats(); st.Refused != 0 {
			t.Fatalf("worker %d refused connections: %+v", i, st)
		}
	}
	if n := totalTasks(ws); n < int64(len(tasks)) {
		t.Fatalf("the workers ran %d tasks, want at least %d", n, len(tasks))
	}
}

// startBatch starts a collector (keys coll, admitting collAllow) and a
// ventilator (keys vent) for a small batch over workers.
func startBatch(t *testing.T, coll *curve.KeyPair, collAllow *curve.AllowList, vent *curve.KeyPair, workers WorkerSource) (*Collector, *Ventilator) {
	t.Helper()
	job := mustJob(t, "filter level>=warn")
	tasks := cut(genLines(200, 3), "gen.log", 50)
	id := newBatchID()
	ccfg := CollectorConfig{Batch: id, Job: job, Out: newSyncBuffer(), ResendTimeout: time.Second}
	if coll != nil {
		ccfg.Keys, ccfg.Authorize = coll, collAllow.Authorize
	}
	c, err := NewCollector(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: job, Tasks: tasks, Collector: c.Endpoint(),
		Workers: workers, Keys: vent, TaskTimeout: time.Second, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return c, v
}

func totalTasks(ws []*Worker) int64 {
	var n int64
	for _, w := range ws {
		n += w.Stats().Tasks
	}
	return n
}

func TestCurveRefusals(t *testing.T) {
	node, intruder := curvetest.KeyPair(t), curvetest.KeyPair(t)
	allow := curve.NewAllowList(node.Public)
	ws, eps := keyedWorkers(t, 1, allow)
	w := ws[0]

	t.Run("null ventilator", func(t *testing.T) {
		before := w.Stats().Refused
		c, v := startBatch(t, &node, allow, nil, eps)
		waitUntil(t, "the refusals on every side", func() bool {
			return v.Stats().Refused >= 2 && w.Stats().Refused > before && c.Stats().Refused >= 1
		})
		if totalTasks(ws) != 0 || c.Stats().Committed != 0 {
			t.Fatalf("a NULL ventilator got work done: %+v", c.Stats())
		}
	})
	t.Run("unadmitted ventilator key", func(t *testing.T) {
		before := w.Stats().Refused
		c, v := startBatch(t, &intruder, curve.NewAllowList(intruder.Public), &intruder, eps)
		waitUntil(t, "the worker to refuse the intruder", func() bool {
			return v.Stats().Refused >= 1 && w.Stats().Refused > before
		})
		if totalTasks(ws) != 0 || c.Stats().Committed != 0 {
			t.Fatalf("an intruder's tasks ran: %+v", w.Stats())
		}
	})
	t.Run("worker endpoint without key", func(t *testing.T) {
		_, v := startBatch(t, &node, allow, &node, StaticWorkers{w.Endpoint()})
		waitUntil(t, "the keyed ventilator to refuse a plain endpoint", func() bool { return v.Stats().Refused >= 1 })
		if totalTasks(ws) != 0 {
			t.Fatal("a task went to a worker whose key was not given")
		}
	})
	t.Run("keyed ventilator, null worker", func(t *testing.T) {
		nw := startWorkers(t, 1)[0]
		_, v := startBatch(t, &node, allow, &node, StaticWorkers{KeyedEndpoint(nw.Endpoint(), intruder.Public)})
		waitUntil(t, "both ends to refuse", func() bool { return v.Stats().Refused >= 1 && nw.Stats().Refused >= 1 })
		if nw.Stats().Tasks != 0 {
			t.Fatal("a NULL worker got a task from a keyed ventilator")
		}
	})
	t.Run("collector with an unadmitted key", func(t *testing.T) {
		// The ventilator is admitted, but its tasks name a collector whose
		// key the worker does not admit: the results never go there.
		before := w.Stats().Refused
		collAllow := curve.NewAllowList(node.Public)
		for _, k := range allow.Keys() {
			collAllow.Add(k)
		}
		c, _ := startBatch(t, &intruder, collAllow, &node, eps)
		waitUntil(t, "the worker to refuse the collector", func() bool { return w.Stats().Refused > before })
		if c.Stats().Committed != 0 {
			t.Fatalf("results reached an unadmitted collector: %+v", c.Stats())
		}
	})

	// The worker keeps serving admitted batches.
	before := totalTasks(ws)
	c, v := startBatch(t, &node, allow, &node, eps)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Wait(ctx); err != nil {
		t.Fatalf("admitted batch: %v (collector %+v, ventilator %+v)", err, c.Stats(), v.Stats())
	}
	if totalTasks(ws) <= before {
		t.Fatal("the admitted batch ran nowhere")
	}
}

// FuzzSplitEndpoint: a task's collector address comes from the network;
// SplitEndpoint never panics, and what it accepts as keyed round-trips.
func FuzzSplitEndpoint(f *testing.F) {
	f.Add("tcp://127.0.0.1:4000")
	f.Add(KeyedEndpoint("tcp://10.0.0.5:41000", curve.PublicKey{1, 2, 3}))
	f.Add("tcp://h:1|")
	f.Add("tcp://h:1|short")
	f.Add("|" + curve.PublicKey{}.String())
	f.Add("tcp://h:1|" + curve.PublicKey{9}.String() + "|x")
	f.Fuzz(func(t *testing.T, s string) {
		ep, key, keyed, err := SplitEndpoint(s)
		if err != nil || !keyed {
			return
		}
		ep2, key2, keyed2, err := SplitEndpoint(KeyedEndpoint(ep, key))
		if err != nil || !keyed2 || ep2 != ep || key2 != key {
			t.Fatalf("%q: round trip gave %q %v %v %v", s, ep2, key2, keyed2, err)
		}
	})
}
