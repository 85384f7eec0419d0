package mesh_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
	"go.uber.org/goleak"
)

// TestMain doubles as a mesh node in a child process (see startChild), so
// tests can kill a node for real; otherwise it runs the tests and checks
// that no goroutine is left behind.
func TestMain(m *testing.M) {
	if port := os.Getenv("MESH_TEST_CHILD_PORT"); port != "" {
		runChild(port)
		return
	}
	goleak.VerifyTestMain(m)
}

func runChild(port string) {
	cfg := mesh.DefaultConfig()
	cfg.Name = "child"
	cfg.BeaconPort, _ = strconv.Atoi(port)
	cfg.BeaconInterval = 100 * time.Millisecond
	cfg.Interface, cfg.BroadcastAddr, cfg.Bind = "lo", "127.255.255.255", "127.0.0.1"
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = 500*time.Millisecond, 2*time.Second
	n, err := mesh.New(cfg)
	if err == nil {
		err = n.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(n.UUID())
	go func() {
		for range n.Events() {
		}
	}()
	select {} // until killed
}

// startChild runs a mesh node in a child process on the test's mesh and
// returns it with its UUID.
func startChild(t *testing.T, beaconPort int) (*exec.Cmd, uuid.UUID) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MESH_TEST_CHILD_PORT="+strconv.Itoa(beaconPort))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	id, err := uuid.Parse(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	return cmd, id
}

func TestKilledPeerExpires(t *testing.T) {
	cfg := meshtest.Config(t)
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = 500*time.Millisecond, 2*time.Second
	a := startNode(t, cfg, nil)

	child, id := startChild(t, cfg.BeaconPort)
	waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, id))
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitEvent(t, a, cfg.ExpiredTimeout+5*time.Second, is(mesh.EventExit, id))
	if d := time.Since(killed); d < cfg.ExpiredTimeout-cfg.EvasiveTimeout {
		t.Fatalf("EXIT %v after the kill: earlier than the silence allows", d)
	}
	t.Logf("killed peer reported EXIT after %v (expired timeout %v)", time.Since(killed).Round(time.Millisecond), cfg.ExpiredTimeout)

	// The same program started again is a new node with a new UUID.
	_, id2 := startChild(t, cfg.BeaconPort)
	if id2 == id {
		t.Fatal("restarted child kept its UUID")
	}
	waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, id2))
	if _, ok := a.PeerName(id); ok {
		t.Fatal("the killed peer is still listed")
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	nodes := meshtest.Cluster(t, 3)
	for _, n := range nodes {
		if err := n.Join("g"); err != nil {
			t.Fatal(err)
		}
		if err := n.Shout("g", []byte("bye")); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	goleak.VerifyNone(t, before)
}
