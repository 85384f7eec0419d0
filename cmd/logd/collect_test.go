package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
)

// logApp is an app logging through logpub to one logd, keeping zerolog's
// exact output for comparison.
type logApp struct {
	w    *logpub.Writer
	log  zerolog.Logger
	mu   sync.Mutex
	want bytes.Buffer
}

func (a *logApp) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want.Write(p)
}

func (a *logApp) output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want.String()
}

func newLogApp(t *testing.T, endpoint, service string) *logApp {
	a := &logApp{w: logpub.NewWriter(logpub.WriterOptions{Endpoint: endpoint, Service: service})}
	a.log = zerolog.New(zerolog.MultiLevelWriter(a.w, a)).With().Timestamp().Logger()
	t.Cleanup(func() { a.w.Close() })
	return a
}

func (a *logApp) logN(first, n int) {
	for i := first; i < first+n; i++ {
		a.log.Warn().Int("i", i).Str("svc", "x").Msg("to be collected")
	}
}

// collected reads a collected capture (rotated files, then current).
func collected(dir string) string {
	var b bytes.Buffer
	ents, _ := os.ReadDir(filepath.Dir(dir))
	base := filepath.Base(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, strings.TrimSuffix(base, ".log")+"-") {
			x, _ := os.ReadFile(filepath.Join(filepath.Dir(dir), n))
			b.Write(x)
		}
	}
	x, _ := os.ReadFile(dir)
	b.Write(x)
	return b.String()
}

func collectStats(t *testing.T, dataDir string) (logpub.CollectorStats, error) {
	var st logpub.CollectorStats
	err := newAdminClient(dataDir).do(context.Background(), "GET", "/collect/stats", nil, &st)
	return st, err
}

// TestCollectLogsFromTheMesh runs two logds with an app each and a third
// logd with --collect-logs, as processes on one loopback mesh: the
// collector's capture holds exactly the apps' events, byte-identical and
// in order; killed with SIGKILL and restarted while the apps keep logging,
// it resumes without loss or duplicate.
func TestCollectLogsFromTheMesh(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	epA, epB := "ipc://"+filepath.Join(dirA, "w.sock"), "ipc://"+filepath.Join(dirB, "w.sock")
	a := runLogd(t, bin, dirA, "logd-a", port, "--writer-endpoint", epA, "--http", "")
	b := runLogd(t, bin, dirB, "logd-b", port, "--writer-endpoint", epB, "--http", "")
	cArgs := []string{"--collect-logs", "--writer-endpoint", "ipc://" + filepath.Join(dirC, "w.sock"), "--http", ""}
	c := runLogd(t, bin, dirC, "logd-c", port, cArgs...)

	api, worker := newLogApp(t, epA, "api"), newLogApp(t, epB, "worker")
	api.logN(0, 300)
	worker.logN(0, 200)
	fileA := filepath.Join(dirC, "capture", "logd-a", "api.log")
	fileB := filepath.Join(dirC, "capture", "logd-b", "worker.log")
	diag := func() string {
		st, err := collectStats(t, dirC)
		return fmt.Sprintf("stats %+v %v\ncollector:\n%s\nlogd-a:\n%s", st, err, c.stderr, a.stderr)
	}
	pollUntil(t, 30*time.Second, "both apps collected", func() bool {
		return collected(fileA) == api.output() && collected(fileB) == worker.output()
	}, diag)

	// The apps keep logging while the collector is killed and restarted.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, x := range []struct {
		app   *logApp
		first int
	}{{api, 300}, {worker, 200}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := x.first; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				x.app.logN(i, 1)
				time.Sleep(time.Millisecond) // pace: about 1000 events/s per app
			}
		}()
	}
	pollUntil(t, 20*time.Second, "live events collected", func() bool {
		st, err := collectStats(t, dirC)
		return err == nil && st.Collected > 1000
	}, diag)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	killedAt := strings.Count(collected(fileA), "\n") + strings.Count(collected(fileB), "\n")
	c2 := runLogd(t, bin, dirC, "logd-c", port, cArgs...)
	pollUntil(t, 20*time.Second, "the restarted collector resumes", func() bool {
		st, err := collectStats(t, dirC)
		return err == nil && st.Collected > 500
	}, func() string { return c2.stderr.String() })
	close(stop)
	wg.Wait()
	for _, x := range []*logApp{api, worker} {
		if err := x.w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 30*time.Second, "every event collected after the restart", func() bool {
		return collected(fileA) == api.output() && collected(fileB) == worker.output()
	}, func() string {
		return fmt.Sprintf("a: %d of %d lines, b: %d of %d\n%s", strings.Count(collected(fileA), "\n"), strings.Count(api.output(), "\n"),
			strings.Count(collected(fileB), "\n"), strings.Count(worker.output(), "\n"), c2.stderr)
	})
	st, err := collectStats(t, dirC)
	if err != nil || st.Missed != 0 || len(st.Origins) != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	t.Logf("%d lines before SIGKILL, %d in all; after the restart: %+v", killedAt,
		strings.Count(api.output(), "\n")+strings.Count(worker.output(), "\n"), st)

	// The collected events were not published again: the collector's own
	// hub received nothing.
	var hs logpub.HubStats
	if err := newAdminClient(dirC).do(context.Background(), "GET", "/logpub/stats", nil, &hs); err != nil || hs.Received != 0 {
		t.Fatalf("collector's hub: %+v %v", hs, err)
	}
	// The origin logd-a is killed and restarted (a new node UUID) while a
	// third app keeps logging through it: the collected file is the app's
	// output in order, without duplicates, short of exactly the events
	// counted as missed.
	app3 := newLogApp(t, epA, "billing")
	stop3 := make(chan struct{})
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for i := 0; ; i++ {
			select {
			case <-stop3:
				return
			default:
			}
			app3.logN(i, 1)
			time.Sleep(time.Millisecond) // pace
		}
	}()
	file3 := filepath.Join(dirC, "capture", "logd-a", "billing.log")
	pollUntil(t, 20*time.Second, "billing collected", func() bool { return strings.Count(collected(file3), "\n") > 200 }, diag)
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	a2 := runLogd(t, bin, dirA, "logd-a", port, "--writer-endpoint", epA, "--http", "")
	pollUntil(t, 20*time.Second, "billing collected from the restarted origin", func() bool {
		st, err := collectStats(t, dirC)
		return err == nil && len(st.Origins) == 3 && st.Origins[0].Name == "logd-a" && st.Origins[0].Collected+st.Origins[1].Collected > 0 &&
			strings.Count(collected(file3), "\n") > 400
	}, func() string { return diag() + "\nlogd-a restarted:\n" + a2.stderr.String() })
	close(stop3)
	<-logged
	if err := app3.w.Close(); err != nil {
		t.Fatal(err)
	}
	want3 := strings.SplitAfter(app3.output(), "\n")
	want3 = want3[:len(want3)-1]
	var got3 []string
	pollUntil(t, 30*time.Second, "billing settled", func() bool {
		st, err := collectStats(t, dirC)
		got3 = strings.SplitAfter(collected(file3), "\n")
		got3 = got3[:len(got3)-1]
		return err == nil && uint64(len(got3))+st.Missed == uint64(len(want3))
	}, func() string {
		st, _ := collectStats(t, dirC)
		return fmt.Sprintf("%d collected + %d missed, %d logged\n%s", len(got3), st.Missed, len(want3), c2.stderr)
	})
	j := 0
	for _, l := range got3 { // in order, each once
		for j < len(want3) && want3[j] != l {
			j++
		}
		if j == len(want3) {
			t.Fatalf("collected line out of order or twice: %q", l)
		}
		j++
	}
	st, _ = collectStats(t, dirC)
	t.Logf("billing: %d logged, %d collected, %d missed across the origin's SIGKILL", len(want3), len(got3), st.Missed)

	out, err := exec.Command(bin, "collect", "--data-dir", dirC).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "logd-a") || !strings.Contains(string(out), "connected") {
		t.Fatalf("logd collect: %v\n%s", err, out)
	}
	for _, p := range []*logdProc{a2, b, c2} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-p.done; err != nil {
			t.Fatalf("logd exit: %v\n%s", err, p.stderr)
		}
	}
}

func TestCollectFlagsErrors(t *testing.T) {
	bin := buildLogd(t)
	for _, args := range [][]string{
		{"run", "--collect-level", "warn", "--data-dir", t.TempDir(), "--beacon-port", "0", "--http", ""},
		{"run", "--collect-logs", "--collect-level", "loud", "--data-dir", t.TempDir(), "--beacon-port", "0", "--http", ""},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "collect") {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command(bin, "collect", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no logd answers") {
		t.Fatalf("collect status without logd: %v\n%s", err, out)
	}
}

// gatherCollect returns the collector's metrics as a registry serves them.
func gatherCollect(t *testing.T) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectMetrics{}); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]*dto.Metric{}
	for _, f := range fams {
		m[f.GetName()] = f.GetMetric()
	}
	return m
}

func TestCollectMetrics(t *testing.T) {
	if m := gatherCollect(t); len(m) != 0 {
		t.Fatalf("metrics without a collector: %v", m)
	}
	cfg := logpub.DefaultCollectorConfig()
	cfg.Dir = t.TempDir()
	c, err := logpub.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	logCollectorMu.Lock()
	logCollector = c
	logCollectorMu.Unlock()
	defer func() {
		logCollectorMu.Lock()
		logCollector = nil
		logCollectorMu.Unlock()
	}()
	m := gatherCollect(t)
	if len(m["logmesh_collect_events_total"]) != 4 || len(m["logmesh_collect_gaps_total"]) != 1 ||
		len(m["logmesh_collect_origins"]) != 2 || m["logmesh_collect_gaps_total"][0].GetCounter().GetValue() != 0 {
		t.Fatalf("metrics %v", m)
	}
}
