package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/internal/netns"
)

// TestClosedMeshIntruder closes a three-host mesh with CURVE: logd-a and
// logd-b admit each other (and an operator's logtail key); an intruder
// host runs its own logd and logtail with a key of its own, which knows
// the others' public keys but is not admitted. A raw AF_PACKET socket on
// the bridge sees every frame between the hosts.
//
// It proves: the intruder never appears in the keyed logds' `logd peers`
// (nor they in its); the operator's logtail receives both apps' markers;
// the intruder's logtail receives no log line and exits with an error,
// through the mesh and when dialling the hub directly with its key; a
// logtail without keys is told the mesh needs them; and no frame on the
// wire holds the markers in plaintext, while the sniffer does see the
// plaintext it should (ZMTP greetings, and a control message).
func TestClosedMeshIntruder(t *testing.T) {
	t.Parallel()
	lan := netns.New(t, 3)
	hA, hB, hX := lan.Hosts[0], lan.Hosts[1], lan.Hosts[2]
	sn := startSniffer(t, lan.Switch)
	logtail := buildLogtail(t)

	keys := map[string]curve.KeyPair{}
	for _, n := range []string{"a", "b", "ops", "intruder"} {
		kp, err := curve.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = kp
	}
	dirA := keyDir(t, keys, "a", "b", "ops")
	dirB := keyDir(t, keys, "b", "a", "ops")
	dirOps := keyDir(t, keys, "ops", "a", "b")
	// The intruder knows every public key; only its own is not admitted.
	dirX := keyDir(t, keys, "intruder", "a", "b", "ops")

	port := meshtest.Config(t).BeaconPort
	a := newLogd(t, hA, port, "logd-a", "--keys", dirA)
	b := newLogd(t, hB, port, "logd-b", "--keys", dirB)
	x := newLogd(t, hX, port, "logd-x", "--keys", dirX)
	for _, l := range []*logd{a, b, x} {
		l.start()
	}
	for _, l := range []*logd{a, b, x} {
		l.waitUp(60 * time.Second)
	}
	waitConverged(t, 60*time.Second, a, b)

	var rnd [8]byte
	rand.Read(rnd[:])
	markerA := "curve-marker-a-" + hex.EncodeToString(rnd[:4])
	markerB := "curve-marker-b-" + hex.EncodeToString(rnd[4:])
	sn.watch(markerA, markerB)
	for _, m := range []struct {
		l      *logd
		marker string
	}{{a, markerA}, {b, markerB}} {
		app := newApp(t, m.l.writerEndpoint(), "curveapp")
		app.log.Warn().Msg(m.marker)
		if st := app.close(); st.Acked != 1 {
			t.Fatalf("app on %s: %+v", m.l.name, st)
		}
	}

	meshFlags := func(h *netns.Host) []string {
		return []string{"--json", "--service", "curveapp", "--beacon-port", strconv.Itoa(port),
			"--interface", h.Iface, "--bind", h.IP, "--broadcast", h.Broadcast, "--wait", "4s"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The operator's logtail reads both hubs, from a's host and from b's,
	// so that each marker crosses the wire (sealed) at least once.
	var out, errOut string
	var code int
	for _, h := range []*netns.Host{hA, hB} {
		out, errOut, code = runOn(ctx, t, h, logtail, append(meshFlags(h), "--keys", dirOps)...)
		if code != 0 || !strings.Contains(out, markerA) || !strings.Contains(out, markerB) || strings.Count(out, "\n") != 2 {
			t.Fatalf("keyed logtail on %s: exit %d, stdout %q, stderr %s", h.IP, code, out, errOut)
		}
	}

	// The intruder's logtail finds only the intruder's own logd on the
	// mesh, which has no such line.
	out, errOut, code = runOn(ctx, t, hX, logtail, append(meshFlags(hX), "--keys", dirX)...)
	if code != 0 || out != "" {
		t.Fatalf("intruder logtail on the mesh: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	// ...and is refused when it dials a's hub with a's public key.
	target := pubEndpoint(t, a) + "|" + keys["a"].Public.String()
	for _, follow := range []string{"--count=0", "-f"} {
		out, errOut, code = runOn(ctx, t, hX, logtail, "--json", follow, "--keys", dirX, "--connect", target)
		if code != 1 || out != "" || !strings.Contains(errOut, "not authorized") {
			t.Fatalf("intruder logtail %s --connect: exit %d, stdout %q, stderr %s", follow, code, out, errOut)
		}
	}
	// A logtail without keys is told why it sees nothing.
	out, errOut, code = runOn(ctx, t, hX, logtail, meshFlags(hX)...)
	if code != 1 || out != "" || !strings.Contains(errOut, "require CURVE") {
		t.Fatalf("logtail without keys: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	out, errOut, code = runOn(ctx, t, hX, logtail, "--json", "--connect", pubEndpoint(t, a))
	if code != 1 || out != "" || !strings.Contains(errOut, "requires CURVE") {
		t.Fatalf("logtail without keys --connect: exit %d, stdout %q, stderr %s", code, out, errOut)
	}

	// The hubs counted the refusals, and admitted only the operator.
	var cs struct{ Handshakes, Refused, Unauthorized uint64 }
	if err := a.admin("/logpub/curve", &cs); err != nil {
		t.Fatal(err)
	}
	if cs.Unauthorized < 2 || cs.Refused < 3 || cs.Handshakes < 1 {
		t.Errorf("logd-a's hub CURVE counters %+v: want ≥2 unauthorized, ≥3 refused, ≥1 handshake", cs)
	}

	// The intruder never got in: not in a's or b's `logd peers`, and they
	// are not in its own.
	idX := x.waitUp(10 * time.Second).Self.ID.String()
	for _, l := range []*logd{a, b} {
		ps, err := l.cmdline("peers", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var r peersReply
		if err := json.Unmarshal([]byte(ps), &r); err != nil {
			t.Fatalf("logd peers --json of %s: %v\n%s", l.name, err, ps)
		}
		if strings.Contains(ps, idX) || strings.Contains(ps, "logd-x") || len(r.Peers) != 1 {
			t.Errorf("%s's peers: %s", l.name, ps)
		}
	}
	if r, err := x.peers(); err != nil || len(r.Peers) != 0 {
		t.Errorf("the intruder sees peers %+v (%v)", r.Peers, err)
	}

	// Without its own logd, the intruder's logtail finds none at all, and
	// says that the mesh refused it.
	x.stop()
	out, errOut, code = runOn(ctx, t, hX, logtail, append(meshFlags(hX), "--keys", dirX)...)
	if code != 1 || out != "" || !strings.Contains(errOut, "no logd found") || !strings.Contains(errOut, "refused") {
		t.Fatalf("intruder logtail on the mesh, alone: exit %d, stdout %q, stderr %s", code, out, errOut)
	}

	// Control: the sniffer does see plaintext between the hosts.
	control := "plaintext-control-" + hex.EncodeToString(rnd[:])
	sn.watch(control)
	sendPlain(t, hA, hX, control)
	waitFor(t, 10*time.Second, "the sniffer to see the control message", func() bool { return sn.saw(control) }, sn.String)

	st := sn.stop()
	report(t, "%d frames, %d bytes sniffed between the hosts; ZMTP CURVE greetings seen: %d", st.frames, st.bytes, st.curveGreetings)
	if st.curveGreetings == 0 {
		t.Errorf("the sniffer saw no CURVE greeting: it did not see the log streams (%s)", sn)
	}
	for _, m := range []string{markerA, markerB} {
		if sn.saw(m) {
			t.Errorf("marker %q crossed the wire in plaintext", m)
		}
	}
}

// keyDir writes a `logd --keys` directory: own's key pair and the public
// keys of the admitted names.
func keyDir(t *testing.T, keys map[string]curve.KeyPair, own string, admitted ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), own)
	if _, _, err := curve.SaveKeyPair(dir, own, keys[own]); err != nil {
		t.Fatal(err)
	}
	for _, n := range admitted {
		pub, _, err := curve.SaveKeyPair(t.TempDir(), n, keys[n])
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".key"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var logtailBin struct {
	once sync.Once
	path string
	err  error
}

// buildLogtail builds cmd/logtail once per test binary, beside logd.
func buildLogtail(t *testing.T) string {
	t.Helper()
	logtailBin.once.Do(func() {
		p := filepath.Join(bins.dir, "logtail")
		out, err := exec.Command("go", "build", "-o", p, "github.com/logmesh/logmesh/cmd/logtail").CombinedOutput()
		if err != nil {
			logtailBin.err = fmt.Errorf("go build logtail: %v\n%s", err, out)
		}
		logtailBin.path = p
	})
	if logtailBin.err != nil {
		t.Fatal(logtailBin.err)
	}
	return logtailBin.path
}

// runOn runs a program on host h and returns its stdout, stderr and exit
// code.
func runOn(ctx context.Context, t *testing.T, h *netns.Host, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := h.Command(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0
}

// sendPlain sends msg in plaintext over TCP from host from to host to.
func sendPlain(t *testing.T, to, from *netns.Host, msg string) {
	t.Helper()
	var l net.Listener
	if err := to.Do(func() (err error) { l, err = net.Listen("tcp", to.IP+":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	err := from.Do(func() error {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return err
		}
		_, err = c.Write([]byte(msg))
		c.Close()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != msg {
		t.Fatalf("control message: got %q", g)
	}
}

// sniffer reads every frame of every interface of a namespace (the
// bridge's: all traffic between the hosts) with a raw AF_PACKET socket and
// remembers which watched strings appeared in any frame.
type sniffer struct {
	fd      int
	stopped atomic.Bool
	done    chan struct{}

	mu      sync.Mutex
	needles []string
	seen    map[string]bool
	st      sniffStats
}

type sniffStats struct{ frames, bytes, curveGreetings int }

func startSniffer(t *testing.T, ns string) *sniffer {
	t.Helper()
	var fd int
	err := (&netns.Host{NS: ns}).Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		t.Fatalf("raw socket in %s: %v", ns, err)
	}
	// A receive timeout lets the reader notice stop.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	s := &sniffer{fd: fd, done: make(chan struct{}), seen: map[string]bool{}}
	go s.run()
	t.Cleanup(func() { s.stop() })
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// curveGreeting is the mechanism field of a ZMTP 3 greeting with CURVE.
var curveGreeting = append([]byte{0x7F, 3, 0}, "CURVE"...)

func (s *sniffer) run() {
	defer close(s.done)
	buf := make([]byte, 1<<16)
	for !s.stopped.Load() {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		frame := buf[:n]
		s.mu.Lock()
		s.st.frames++
		s.st.bytes += n
		if i := bytes.Index(frame, curveGreeting); i >= 9 && frame[i-9] == 0xFF {
			s.st.curveGreetings++
		}
		for _, nd := range s.needles {
			if !s.seen[nd] && bytes.Contains(frame, []byte(nd)) {
				s.seen[nd] = true
			}
		}
		s.mu.Unlock()
	}
}

// watch adds strings to look for in every later frame.
func (s *sniffer) watch(needles ...string) {
	s.mu.Lock()
	s.needles = append(s.needles, needles...)
	s.mu.Unlock()
}

func (s *sniffer) saw(needle string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[needle]
}

func (s *sniffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("sniffer: %d frames, %d bytes, %d CURVE greetings, seen %v", s.st.frames, s.st.bytes, s.st.curveGreetings, s.seen)
}

// stop ends the reader and returns the counts.
func (s *sniffer) stop() sniffStats {
	if s.stopped.CompareAndSwap(false, true) {
		<-s.done
		unix.Close(s.fd)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}
