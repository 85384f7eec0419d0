package curve

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// pyzmqScript talks CURVE through libzmq (Debian python3-zmq). Modes:
//
//	server SECRET CERTDIR: ROUTER, curve server; ZAP admits the public key
//	  files of CERTDIR (read by pyzmq's zmq.auth); prints its port, then
//	  echoes each message as [id, "echo", frames...] until "quit".
//	client ENDPOINT SERVERPUB PUB SECRET WAIT: DEALER, curve client; sends
//	  ["hello", "from-libzmq"], prints "REPLY f1 f2..." or "NOREPLY" after WAIT s.
const pyzmqScript = `
import sys, zmq, zmq.auth
from zmq.auth.thread import ThreadAuthenticator
mode = sys.argv[1]
ctx = zmq.Context()
if mode == "server":
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=sys.argv[3])
    s = ctx.socket(zmq.ROUTER)
    s.linger = 0
    s.curve_server = True
    s.curve_secretkey = sys.argv[2].encode()
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    s.rcvtimeo = 20000
    while True:
        try:
            frames = s.recv_multipart()
        except zmq.Again:
            print("TIMEOUT", flush=True)
            break
        if frames[1:] == [b"quit"]:
            break
        s.send_multipart([frames[0], b"echo"] + frames[1:])
    s.close()
    auth.stop()
else:
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.identity = b"py-dealer"
    s.curve_serverkey = sys.argv[3].encode()
    s.curve_publickey = sys.argv[4].encode()
    s.curve_secretkey = sys.argv[5].encode()
    s.connect(sys.argv[2])
    s.send_multipart([b"hello", b"from-libzmq"])
    if s.poll(int(float(sys.argv[6]) * 1000)):
        print("REPLY " + " ".join(f.decode() for f in s.recv_multipart()), flush=True)
    else:
        print("NOREPLY", flush=True)
    s.close()
ctx.term()
`

const systemPython = "/usr/bin/python3"

// requirePyzmq returns the path of the interop script, or skips the test
// when python3-zmq is missing; under CI=true it fails instead.
func requirePyzmq(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import zmq; print(zmq.zmq_version(), zmq.has('curve'))").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "True") {
		msg := "libzmq interop needs " + systemPython + " with python3-zmq built with CURVE (apt-get install -y python3-zmq): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	path := filepath.Join(t.TempDir(), "curve_interop.py")
	if err := os.WriteFile(path, []byte(pyzmqScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPy runs the script; the test's cleanup kills it if still running.
func startPy(t *testing.T, args ...string) (*bufio.Scanner, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, systemPython, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waited bool
	wait := func() error {
		if waited {
			return nil
		}
		waited = true
		return <-done
	}
	t.Cleanup(func() {
		cancel()
		_ = wait()
	})
	return bufio.NewScanner(stdout), wait
}

func readLine(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("python: no output (%v)", sc.Err())
	}
	return sc.Text()
}

func TestInteropGoClientLibzmqServer(t *testing.T) {
	script := requirePyzmq(t)
	leakCheck(t)
	srv, cli, other := mustKeys(t), mustKeys(t), mustKeys(t)
	certs := t.TempDir()
	if _, _, err := SaveKeyPair(certs, "client", cli); err != nil {
		t.Fatal(err)
	}
	sc, wait := startPy(t, script, "server", srv.Secret.Z85(), certs)
	ep := "tcp://127.0.0.1:" + readLine(t, sc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Run("wrong server key", func(t *testing.T) {
		sec := NewClient(cli, other.Public)
		d := newDealer(t, ctx, sec, "go-wrong")
		err := d.Dial(Endpoint(ep))
		if err == nil {
			t.Fatal("dial with a wrong server key succeeded")
		}
		if st := sec.Stats(); st.Failures != 1 || st.Handshakes != 0 {
			t.Fatalf("stats %+v (%v)", st, err)
		}
	})
	t.Run("client key not admitted by ZAP", func(t *testing.T) {
		sec := NewClient(other, srv.Public)
		d := newDealer(t, ctx, sec, "go-stranger")
		err := d.Dial(Endpoint(ep))
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("dial with a key outside the ZAP allow-list: %v, want ErrRefused", err)
		}
	})
	t.Run("exchange", func(t *testing.T) {
		d := newDealer(t, ctx, NewClient(cli, srv.Public), "go-dealer")
		if err := d.Dial(Endpoint(ep)); err != nil {
			t.Fatal(err)
		}
		big := strings.Repeat("b", 1000)
		if err := d.Send(zmq4.NewMsgFromString([]string{"hi", "", big})); err != nil {
			t.Fatal(err)
		}
		m, err := recvTimeout(t, d, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Frames) != 4 || string(m.Frames[0]) != "echo" || string(m.Frames[1]) != "hi" ||
			len(m.Frames[2]) != 0 || string(m.Frames[3]) != big {
			t.Fatalf("reply %q", m.Frames)
		}
		if err := d.Send(zmq4.NewMsgString("quit")); err != nil {
			t.Fatal(err)
		}
	})
	if err := wait(); err != nil {
		t.Fatalf("python server: %v", err)
	}
}

func TestInteropLibzmqClientGoServer(t *testing.T) {
	script := requirePyzmq(t)
	leakCheck(t)
	srv, cli, other := mustKeys(t), mustKeys(t), mustKeys(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sec := NewServer(srv, NewAllowList(cli.Public).Authorize)
	router, ep := listenRouter(t, ctx, sec)

	got := make(chan zmq4.Msg, 4)
	go func() {
		defer close(got)
		for {
			m, err := router.Recv()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue // zmq4 reports a dropped connection as a Recv error
			}
			got <- m
			_ = router.Send(zmq4.NewMsgFrom(append([][]byte{m.Frames[0], []byte("echo")}, m.Frames[1:]...)...))
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = router.Close()
		for range got {
		}
	})

	run := func(serverKey PublicKey, kp KeyPair, wait string) string {
		sc, done := startPy(t, script, "client", ep, serverKey.String(), kp.Public.String(), kp.Secret.Z85(), wait)
		line := readLine(t, sc)
		if err := done(); err != nil {
			t.Fatalf("python client: %v", err)
		}
		return line
	}
	t.Run("client key not in allow-list", func(t *testing.T) {
		if line := run(srv.Public, other, "1.5"); line != "NOREPLY" {
			t.Fatalf("python: %q, want NOREPLY", line)
		}
		waitStats(t, sec, func(s Stats) bool { return s.Unauthorized > 0 })
	})
	t.Run("wrong server key", func(t *testing.T) {
		before := sec.Stats().Failures
		if line := run(other.Public, cli, "1.5"); line != "NOREPLY" {
			t.Fatalf("python: %q, want NOREPLY", line)
		}
		waitStats(t, sec, func(s Stats) bool { return s.Failures > before })
	})
	if len(got) != 0 {
		t.Fatalf("router received %d messages from refused clients", len(got))
	}
	t.Run("exchange", func(t *testing.T) {
		if line := run(srv.Public, cli, "10"); line != "REPLY echo hello from-libzmq" {
			t.Fatalf("python: %q", line)
		}
		select {
		case m := <-got:
			if len(m.Frames) != 3 || string(m.Frames[0]) != "py-dealer" || string(m.Frames[2]) != "from-libzmq" {
				t.Fatalf("router got %q", m.Frames)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("router got nothing")
		}
	})
}
