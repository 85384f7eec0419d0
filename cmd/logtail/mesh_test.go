package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// meshLogd is an in-process hub advertised on a test mesh, as logd does.
type meshLogd struct {
	hub  *logpub.Hub
	node *mesh.Node
}

func startMeshLogd(t *testing.T, name string) *meshLogd {
	t.Helper()
	cfg := logpub.DefaultHubConfig()
	cfg.WriterEndpoint = ""
	cfg.PubEndpoint = "tcp://0.0.0.0:0" // advertised as tcp://*:port
	mcfg := meshtest.Config(t)
	mcfg.Name = name
	node, err := mesh.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node, cfg.NodeName = node.UUID(), name
	h, err := logpub.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	node.SetHeader("X-LOGD-PUB", "tcp://*:"+h.PubEndpoint()[strings.LastIndex(h.PubEndpoint(), ":")+1:])
	if err := node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := &meshLogd{hub: h, node: node}
	t.Cleanup(m.stop)
	return m
}

func (m *meshLogd) stop() {
	m.hub.Close()
	m.node.Close()
}

type lockedLines struct {
	mu sync.Mutex
	s  strings.Builder
}

func (l *lockedLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Write(p)
}

func (l *lockedLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.String()
}

// startLogtail runs logtail with args as a process. It returns the process,
// its stdout lines (closed when it ends) and its stderr; a process still
// running when the test ends is killed (continued first, if stopped).
func startLogtail(t *testing.T, args ...string) (*exec.Cmd, <-chan string, *lockedLines) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "LOGTAIL_TEST_ROLE=logtail")
	stderr := &lockedLines{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, lines, stderr
}

func TestMeshDiscoveryNewAndLeavingNodes(t *testing.T) {
	a := startMeshLogd(t, "alpha")
	mcfg := meshtest.Config(t)
	cmd, lines, stderr := startLogtail(t, "-f", "--json", "--level", "warn",
		"--beacon-port", strconv.Itoa(mcfg.BeaconPort), "--interface", "lo",
		"--broadcast", "127.255.255.255", "--bind", "127.0.0.1")
	// expect ingests into h until logtail prints the marker (it subscribes
	// once it found the node on the mesh).
	expect := func(h *logpub.Hub, marker string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logtail ended: %s", stderr.String())
				}
				if strings.Contains(l, marker) {
					return
				}
				if strings.Contains(l, `"level":"info"`) {
					t.Fatalf("info event passed a warn filter: %s", l)
				}
			case <-tick.C:
				h.Ingest("api", []byte(`{"level":"info","message":"filtered"}`))
				h.Ingest("api", []byte(fmt.Sprintf(`{"level":"warn","message":%q}`, marker)))
			case <-deadline:
				t.Fatalf("logtail did not print %q; stderr: %s", marker, stderr.String())
			}
		}
	}
	expect(a.hub, "from-alpha")
	b := startMeshLogd(t, "beta")
	expect(b.hub, "from-beta")
	b.stop()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "node beta left") {
		if time.Now().After(deadline) {
			t.Fatalf("departure not reported; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	expect(a.hub, "alpha-still")
	cmd.Process.Signal(os.Interrupt)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("logtail after SIGINT: %v; stderr: %s", err, stderr.String())
	}
	// The departure is reported once, whether the broken stream or the
	// mesh told first.
	if n := strings.Count(stderr.String(), "node beta left"); n != 1 {
		t.Fatalf("departure reported %d times; stderr: %s", n, stderr.String())
	}
}
