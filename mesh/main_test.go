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
// tests can kill a node for real or run one in another network namespace;
// otherwise it runs the tests and checks that no goroutine is left behind.
func TestMain(m *testing.M) {
	switch os.Getenv("MESH_CHILD") {
	case "1":
		runChild()
		return
	case "sim":
		runSim()
		return
	}
	goleak.VerifyTestMain(m)
}

// runChild runs one node configured from MESH_CHILD_* variables. It prints
// "UUID <id>", then "ENTER <id>" and "EXIT <id>" as peers come and go, and
// runs until killed.
func runChild() {
	env := func(k, def string) string {
		if v := os.Getenv("MESH_CHILD_" + k); v != "" {
			return v
		}
		return def
	}
	cfg := mesh.DefaultConfig()
	cfg.Name = env("NAME", "child")
	cfg.BeaconPort, _ = strconv.Atoi(env("BEACON_PORT", "0"))
	cfg.BeaconInterval = 100 * time.Millisecond
	cfg.Interface = env("IFACE", "lo")
	cfg.BroadcastAddr = env("BROADCAST", "")
	cfg.Bind = env("BIND", "127.0.0.1")
	cfg.GossipBind = env("GOSSIP_BIND", "")
	if j := env("JOIN", ""); j != "" {
		cfg.Join = strings.Split(j, ",")
	}
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = 500*time.Millisecond, 2*time.Second
	n, err := mesh.New(cfg)
	if err == nil {
		err = n.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("UUID %s %s\n", n.UUID(), n.Endpoint())
	for ev := range n.Events() {
		switch ev.Type {
		case mesh.EventEnter, mesh.EventExit:
			fmt.Printf("%s %s %s\n", ev.Type, ev.Peer, ev.Endpoint)
		}
	}
}

// child is a mesh node in a child process.
type child struct {
	cmd      *exec.Cmd
	id       uuid.UUID
	endpoint string
	lines    chan string // what it prints after its UUID
}

// startChild runs a node in a child process, through cmdPrefix (such as
// "ip netns exec ns") when given, with MESH_CHILD_* settings from env.
func startChild(t *testing.T, env map[string]string, cmdPrefix ...string) *child {
	t.Helper()
	args := append(cmdPrefix, os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MESH_CHILD=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, "MESH_CHILD_"+k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("child printed nothing: %v", sc.Err())
	}
	f := strings.Fields(sc.Text())
	if len(f) != 3 || f[0] != "UUID" {
		t.Fatalf("child said %q", sc.Text())
	}
	if c.id, err = uuid.Parse(f[1]); err != nil {
		t.Fatalf("child said %q: %v", sc.Text(), err)
	}
	c.endpoint = f[2]
	go func() {
		defer close(c.lines)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

// waitLine waits until the child prints a line with the given prefix.
func (c *child) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child %s ended while waiting for %q", c.id, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("child %s did not print %q within %v", c.id, prefix, timeout)
		}
	}
}

func loopbackChild(t *testing.T, beaconPort int) *child {
	return startChild(t, map[string]string{"BEACON_PORT": strconv.Itoa(beaconPort),
		"IFACE": "lo", "BROADCAST": "127.255.255.255", "BIND": "127.0.0.1"})
}

func TestKilledPeerExpires(t *testing.T) {
	cfg := meshtest.Config(t)
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = 500*time.Millisecond, 2*time.Second
	a := startNode(t, cfg, nil)

	c := loopbackChild(t, cfg.BeaconPort)
	id := c.id
	waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, id))
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitEvent(t, a, cfg.ExpiredTimeout+5*time.Second, is(mesh.EventExit, id))
	if d := time.Since(killed); d < cfg.ExpiredTimeout-cfg.EvasiveTimeout {
		t.Fatalf("EXIT %v after the kill: earlier than the silence allows", d)
	}
	t.Logf("killed peer reported EXIT after %v (expired timeout %v)", time.Since(killed).Round(time.Millisecond), cfg.ExpiredTimeout)

	// The same program started again is a new node with a new UUID.
	id2 := loopbackChild(t, cfg.BeaconPort).id
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
