package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/dashboard"
	"github.com/logmesh/logmesh/harmony"
	"github.com/logmesh/logmesh/internal/meshtest"
)

// writeArchives writes a small archive tree: plain and gzip files, and a
// file with lines that are not JSON.
func writeArchives(t *testing.T, lines int) string {
	t.Helper()
	dir := t.TempDir()
	levels := []string{"debug", "info", "warn", "error"}
	services := []string{"api", "db", "web"}
	gen := func(seed, n int) []byte {
		var b bytes.Buffer
		for i := range n {
			x := (i*7919 + seed*104729) % 1000003
			fmt.Fprintf(&b, `{"level":"%s","service":"%s","time":"2026-11-27T04:%02d:%02dZ","message":"event %d"}`+"\n",
				levels[x%4], services[(x/4)%3], (i/600)%60, (i/10)%60, i)
		}
		return b.Bytes()
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "host-a"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "host-a", "app.log"), gen(1, lines/2), 0o644))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(gen(2, lines/2))
	zw.Close()
	must(os.WriteFile(filepath.Join(dir, "host-a", "app-1.log.gz"), z.Bytes(), 0o644))
	must(os.WriteFile(filepath.Join(dir, "host-b.log"), []byte("{\"level\":\"warn\",\"service\":\"api\"}\nnot json at all\n"), 0o644))
	return dir
}

// reference runs the batch in this process, as a single process would.
func reference(t *testing.T, spec, dir string) []byte {
	t.Helper()
	tasks, _, err := harmony.LoadSources([]string{dir}, harmony.SourceOptions{ChunkLines: 500})
	if err != nil {
		t.Fatal(err)
	}
	job, err := harmony.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := harmony.RunLocal(context.Background(), job, tasks, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReprocessLocalWorkers(t *testing.T) {
	bin := buildLogd(t)
	dir := writeArchives(t, 20000)
	out := filepath.Join(t.TempDir(), "warn.ndjson")
	cmd := exec.Command(bin, "reprocess", "--data-dir", t.TempDir(), "--local", "2", "--from", dir,
		"--filter", "level>=warn service!=db", "--out", out, "--chunk-lines", "500", "--progress", "plain")
	stderr, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reprocess: %v\n%s", err, stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := reference(t, "filter level>=warn service!=db", dir); !bytes.Equal(got, want) || len(want) == 0 {
		t.Fatalf("output differs from a single-process run (%d vs %d bytes)", len(got), len(want))
	}
	for _, s := range []string{"bad input " + filepath.Join(dir, "host-b.log") + ":2:", "1 bad lines", "harmony: "} {
		if !strings.Contains(string(stderr), s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	conv, err := exec.Command(bin, "reprocess", "--data-dir", t.TempDir(), "--local", "1", "--from", dir,
		"--convert", "logfmt level,message", "--chunk-lines", "500", "--progress", "none").Output()
	if err != nil {
		t.Fatalf("reprocess --convert: %v", err)
	}
	if want := reference(t, "convert logfmt level,message", dir); !bytes.Equal(conv, want) || !bytes.HasPrefix(conv, []byte("level=")) {
		t.Fatalf("--convert output differs from a single-process run:\n%.200s\nvs\n%.200s", conv, want)
	}
	// A bad command line exits with 2.
	err = exec.Command(bin, "reprocess", "--from", dir, "--filter", "level>=loud").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad filter: %v, want exit code 2", err)
	}
}

func TestReprocessOverMesh(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	a := startLogd(t, bin, port, "logd-a")
	b := startLogd(t, bin, port, "logd-b")
	var r harmonyWorkersReply
	deadline := time.Now().Add(20 * time.Second)
	for len(r.Workers) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("logd-a never saw 2 workers: %+v\n%s", r, a.stderr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = newAdminClient(a.dataDir).do(ctx, http.MethodGet, "/harmony/workers", nil, &r)
		cancel()
	}
	dir := writeArchives(t, 60000)
	out := filepath.Join(t.TempDir(), "counts.ndjson")
	cmd := exec.Command(bin, "reprocess", "--data-dir", a.dataDir, "--from", dir,
		"--count-by", "level,service,minute", "--out", out, "--chunk-lines", "500", "--progress", "none")
	stderr, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reprocess: %v\n%s", err, stderr)
	}
	if !strings.Contains(string(stderr), "2 workers on the mesh") {
		t.Errorf("reprocess did not use the mesh's workers:\n%s", stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := reference(t, "count-by level,service,minute", dir); !bytes.Equal(got, want) {
		t.Fatalf("output differs from a single-process run:\n%.300s\nvs\n%.300s", got, want)
	}
	var batches []dashboard.Batch
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err = newAdminClient(a.dataDir).do(ctx, http.MethodGet, "/harmony/batches", nil, &batches)
	cancel()
	if err != nil || len(batches) != 1 || batches[0].Done != batches[0].Tasks || batches[0].Tasks == 0 || batches[0].Ended.IsZero() {
		t.Errorf("batches reported to logd-a: %+v, %v", batches, err)
	}
	for _, p := range []*logdProc{a, b} {
		var st harmony.WorkerStats
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := newAdminClient(p.dataDir).do(ctx, http.MethodGet, "/harmony/stats", nil, &st)
		cancel()
		if err != nil || st.Tasks == 0 {
			t.Errorf("worker of %s: %+v, %v: took no task", p.dataDir, st, err)
		}
	}
}
