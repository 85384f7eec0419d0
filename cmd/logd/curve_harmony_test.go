package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/harmony"
	"github.com/logmesh/logmesh/internal/meshtest"
)

func workerStats(t *testing.T, dataDir string) harmony.WorkerStats {
	t.Helper()
	var st harmony.WorkerStats
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := newAdminClient(dataDir).do(ctx, http.MethodGet, "/harmony/stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReprocessClosedMesh: on a mesh closed with --keys, `logd reprocess
// --keys` runs a batch over both logds' workers with the node's keys and
// gets the single-process result. Without keys it refuses to start; with
// a key the workers do not admit, no task runs and the workers count the
// refusals.
func TestReprocessClosedMesh(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	keys := keyDirs(t, bin, []string{"a", "b", "x"}, "a", "b")
	a := startLogd(t, bin, port, "logd-a", "--keys", keys["a"])
	b := startLogd(t, bin, port, "logd-b", "--keys", keys["b"])
	diag := func() string { return "stderr a:\n" + a.stderr.String() + "\nstderr b:\n" + b.stderr.String() }
	var r harmonyWorkersReply
	pollUntil(t, 20*time.Second, "two keyed workers on logd-a", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := newAdminClient(a.dataDir).do(ctx, http.MethodGet, "/harmony/workers", nil, &r)
		return err == nil && len(r.Workers) == 2 && strings.Contains(r.Workers[0], "|") && strings.Contains(r.Workers[1], "|")
	}, diag)

	dir := writeArchives(t, 20000)
	spec := "count-by level,service"
	out := filepath.Join(t.TempDir(), "counts.ndjson")
	args := []string{"reprocess", "--data-dir", a.dataDir, "--from", dir, "--count-by", "level,service",
		"--out", out, "--chunk-lines", "500", "--progress", "none"}
	if stderr, err := exec.Command(bin, append(args, "--keys", keys["a"])...).CombinedOutput(); err != nil {
		t.Fatalf("reprocess --keys: %v\n%s", err, stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := reference(t, spec, dir); !bytes.Equal(got, want) {
		t.Fatalf("output differs from a single-process run:\n%.300s\nvs\n%.300s", got, want)
	}
	tasks := map[string]int64{}
	for _, p := range []*logdProc{a, b} {
		st := workerStats(t, p.dataDir)
		if st.Tasks == 0 || st.Refused != 0 {
			t.Errorf("worker of %s: %+v\n%s", p.dataDir, st, diag())
		}
		tasks[p.dataDir] = st.Tasks
	}
	os.Remove(out)

	stderr, err := exec.Command(bin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(stderr), "--keys") {
		t.Fatalf("reprocess without keys: %v\n%s", err, stderr)
	}

	// The intruder holds the workers' public keys but its own is not
	// admitted: its ventilator's connections are refused; it runs until
	// killed and nothing is computed.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	stderr, err = exec.CommandContext(ctx, bin, append(args, "--keys", keys["x"])...).CombinedOutput()
	if err == nil {
		t.Fatalf("the intruder's batch completed\n%s", stderr)
	}
	for _, p := range []*logdProc{a, b} {
		st := workerStats(t, p.dataDir)
		if st.Tasks != tasks[p.dataDir] || st.Refused == 0 {
			t.Errorf("worker of %s after the intruder: %+v (tasks before %d)\n%s", p.dataDir, st, tasks[p.dataDir], diag())
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the intruder's batch wrote %s (%v)", out, err)
	}
}

// TestReprocessKeysOnOpenMesh: `logd reprocess --keys` against a logd
// without keys stops with an error rather than wait for open workers it
// will never talk to (no downgrade).
func TestReprocessKeysOnOpenMesh(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	keys := keyDirs(t, bin, []string{"a"}, "a")
	a := startLogd(t, bin, port, "logd-a")
	pollUntil(t, 20*time.Second, "logd-a's worker", func() bool {
		var r harmonyWorkersReply
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return newAdminClient(a.dataDir).do(ctx, http.MethodGet, "/harmony/workers", nil, &r) == nil && len(r.Workers) == 1
	}, a.stderr.String)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stderr, err := exec.CommandContext(ctx, bin, "reprocess", "--data-dir", a.dataDir, "--from", writeArchives(t, 100),
		"--keys", keys["a"], "--progress", "none").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(stderr), "run without --keys") {
		t.Fatalf("reprocess --keys on an open mesh: %v\n%s", err, stderr)
	}
}
