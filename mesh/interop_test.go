package mesh_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

const python = "/usr/bin/python3"

// requirePyzmq skips unless Debian's python3-zmq is installed (it fails
// instead when CI=true, where `make deps` installs it).
func requirePyzmq(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import zmq").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-zmq is required in CI: %v", err)
		}
		t.Skipf("skipping libzmq interop: %s cannot import zmq (apt-get install -y python3-zmq): %v", python, err)
	}
}

// startPython runs a Python helper (python3 with args) and returns its
// stdin and its stdout lines. Closing stdin asks it to stop; at the end of
// the test it is given 5 s, then killed.
func startPython(t *testing.T, args ...string) (io.WriteCloser, <-chan string) {
	t.Helper()
	cmd := exec.Command(python, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return stdin, lines
}

// TestInteropPyzmq runs a ZRE peer written in Python on libzmq (pyzmq)
// against our node: each sees the other enter, JOIN, SHOUT and WHISPER
// cross in both directions, and our port-0 beacon makes it see us leave.
func TestInteropPyzmq(t *testing.T) { testInteropPyzmq(t, false) }

// TestInteropPyzmqCurve does the same on a mesh closed with CURVE, the
// Python peer doing what Zyre does with a certificate (libzmq's CURVE,
// version 3 beacons, X-PUBLICKEY).
func TestInteropPyzmqCurve(t *testing.T) { testInteropPyzmq(t, true) }

func testInteropPyzmq(t *testing.T, secure bool) {
	requirePyzmq(t)
	cfg := meshtest.Config(t)
	cfg.Name = "gonode"
	allow := curve.NewAllowList()
	args := []string{"testdata/pyzre.py", strconv.Itoa(cfg.BeaconPort), "127.255.255.255"}
	if secure {
		kp, err := curve.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Curve = &mesh.Curve{Keys: kp, Authorize: allow.Authorize}
		args = append(args, "curve")
	}
	node := startNode(t, cfg, map[string]string{"X-LOGD-PUB": "tcp://127.0.0.1:1234"})

	stdin, lines := startPython(t, args...)
	expect := func(prefix string) string {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("python peer ended before %q", prefix)
				}
				t.Logf("python: %s", l)
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("python peer never printed %q", prefix)
			}
		}
	}
	ready := strings.Fields(expect("READY "))
	py, err := uuid.Parse(ready[1])
	if err != nil {
		t.Fatal(err)
	}
	if secure {
		key, err := curve.ParsePublicKey(ready[3])
		if err != nil {
			t.Fatal(err)
		}
		allow.Add(key)
	}

	// Their HELLO reaches us...
	ev := waitEvent(t, node, 15*time.Second, is(mesh.EventEnter, py))
	if ev.Name != "pyzre" || ev.Headers["X-PY"] != "yes" || ev.Endpoint != ready[2] {
		t.Fatalf("ENTER from python = %+v", ev)
	}
	if secure && (ev.Headers["X-PUBLICKEY"] != ready[3]) {
		t.Fatalf("ENTER from python has X-PUBLICKEY %q, want %s", ev.Headers["X-PUBLICKEY"], ready[3])
	}
	waitEvent(t, node, 5*time.Second, func(ev mesh.Event) bool {
		return ev.Type == mesh.EventJoin && ev.Peer == py && ev.Group == "interop"
	})
	// ...and ours reaches them, headers included.
	l := expect("ENTER " + node.UUID().String())
	if !strings.Contains(l, "gonode") || !strings.Contains(l, `"X-LOGD-PUB":"tcp://127.0.0.1:1234"`) {
		t.Fatalf("python saw %q", l)
	}

	if err := node.Join("interop"); err != nil {
		t.Fatal(err)
	}
	expect("JOIN " + node.UUID().String() + " interop")
	if err := node.Shout("interop", []byte("hello libzmq")); err != nil {
		t.Fatal(err)
	}
	expect("SHOUT " + node.UUID().String() + " interop hello libzmq")
	if err := node.Whisper(py, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	expect("WHISPER " + node.UUID().String() + " ping")
	ev = waitEvent(t, node, 10*time.Second, is(mesh.EventWhisper, py))
	if len(ev.Frames) != 1 || string(ev.Frames[0]) != "pong:ping" {
		t.Fatalf("reply = %q", ev.Frames)
	}

	node.Close()
	expect("EXIT " + node.UUID().String())
	stdin.Close()
	waitEventsClosed(t, node)
}

func waitEventsClosed(t *testing.T, n *mesh.Node) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-n.Events():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("events not closed after Close")
		}
	}
}
