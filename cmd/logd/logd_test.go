package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
)

// buildLogd compiles logd into a temporary directory.
func buildLogd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "logd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type logdProc struct {
	cmd     *exec.Cmd
	dataDir string
	stderr  *lockedBuffer
	done    chan error
}

// lockedBuffer collects a child's stderr; tests read it while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runLogd starts `logd run` on dataDir, on the test's isolated loopback
// mesh (beaconPort) with fast beacons and liveness timers, and extra flags.
// A process still running at the end of the test is killed.
func runLogd(t *testing.T, bin, dataDir, name string, beaconPort int, extra ...string) *logdProc {
	t.Helper()
	p := &logdProc{dataDir: dataDir, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	args := []string{"run", "--data-dir", p.dataDir, "--name", name,
		"--beacon-port", strconv.Itoa(beaconPort), "--beacon-interval", "100ms",
		"--interface", "lo", "--broadcast", "127.255.255.255", "--bind", "127.0.0.1",
		"--evasive", "1s", "--expired", "5s"}
	p.cmd = exec.Command(bin, append(args, extra...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// startLogd runs `logd run` on a fresh data dir, with debug logging.
func startLogd(t *testing.T, bin string, beaconPort int, name string, extra ...string) *logdProc {
	t.Helper()
	return runLogd(t, bin, t.TempDir(), name, beaconPort, append([]string{"--log-level", "debug"}, extra...)...)
}

func peersJSON(t *testing.T, bin, dataDir string) (peersReply, error) {
	t.Helper()
	var r peersReply
	out, err := exec.Command(bin, "peers", "--json", "--data-dir", dataDir).Output()
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(out, &r)
}

func TestTwoLogdsSeeEachOther(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	a := startLogd(t, bin, port, "logd-a")
	b := startLogd(t, bin, port, "logd-b")

	deadline := time.Now().Add(20 * time.Second)
	for {
		ra, errA := peersJSON(t, bin, a.dataDir)
		rb, errB := peersJSON(t, bin, b.dataDir)
		if errA == nil && errB == nil && len(ra.Peers) == 1 && ra.Peers[0].ID == rb.Self.ID && ra.Peers[0].Name == "logd-b" {
			if ra.Self.Name != "logd-a" || ra.Self.Endpoint == "" {
				t.Fatalf("self = %+v", ra.Self)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logd-a never listed logd-b: %+v %v / %+v %v\nstderr a:\n%s", ra, errA, rb, errB, a.stderr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}

	for _, p := range []*logdProc{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("logd exited with %v after SIGTERM\n%s", err, p.stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("logd did not stop within 10 s of SIGTERM\n%s", p.stderr)
		}
		if _, err := os.Stat(filepath.Join(p.dataDir, "logd.sock")); !os.IsNotExist(err) {
			t.Errorf("admin socket left behind: %v", err)
		}
	}
	if !strings.Contains(a.stderr.String(), "ENTER") {
		t.Errorf("logd-a did not log ENTER:\n%s", a.stderr)
	}
}

// TestTwoLogdsWithKeys closes the mesh with CURVE: each logd has its key
// pair from `logd keygen` and the other's public key in its key directory.
func TestTwoLogdsWithKeys(t *testing.T) {
	bin := buildLogd(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	for _, k := range []struct{ dir, name string }{{dirA, "a"}, {dirB, "b"}} {
		if out, err := exec.Command(bin, "keygen", "--dir", k.dir, "--name", k.name).CombinedOutput(); err != nil {
			t.Fatalf("keygen: %v\n%s", err, out)
		}
	}
	copyFile(t, filepath.Join(dirA, "a.key"), filepath.Join(dirB, "a.key"))
	copyFile(t, filepath.Join(dirB, "b.key"), filepath.Join(dirA, "b.key"))

	port := meshtest.Config(t).BeaconPort
	a := startLogd(t, bin, port, "logd-a", "--keys", dirA)
	b := startLogd(t, bin, port, "logd-b", "--keys", dirB)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ra, errA := peersJSON(t, bin, a.dataDir)
		rb, errB := peersJSON(t, bin, b.dataDir)
		if errA == nil && errB == nil && len(ra.Peers) == 1 && ra.Peers[0].ID == rb.Self.ID {
			if key := ra.Peers[0].Headers["X-PUBLICKEY"]; key == "" || key != rb.Self.Headers["X-PUBLICKEY"] {
				t.Fatalf("peer key %q, self key %q", key, rb.Self.Headers["X-PUBLICKEY"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CURVE logds never met: %+v %v / %+v %v\nstderr a:\n%s", ra, errA, rb, errB, a.stderr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	for _, p := range []*logdProc{a, b} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-p.done; err != nil {
			t.Fatalf("logd exited with %v\n%s", err, p.stderr)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
