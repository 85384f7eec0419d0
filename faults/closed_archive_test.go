package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/internal/netns"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// archiveWithMarker writes a fake archive of about 256 KiB whose every
// line holds marker, and returns its SHA-256.
func archiveWithMarker(t *testing.T, path, marker string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; b.Len() < 256<<10; i++ {
		fmt.Fprintf(&b, `{"level":"warn","service":"api","message":"%s %d"}`+"\n", marker, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return fileSHA(path)
}

type fileMQStatus struct {
	Shipping *struct {
		Endpoint string
		Refused  uint64
		Clients  []struct{ Name string }
	}
	Collecting *struct{ Refused uint64 }
}

// regularFiles lists the files under dir, outside FileMQ's state.
func regularFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, "/.filemq/") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// dialFrom dials endpoint from host h with a zmq4 DEALER, as a FileMQ
// client does (the guarded transports; CURVE when keys is set), and
// reports the handshake's outcome. The socket is closed before it returns.
func dialFrom(h *netns.Host, endpoint string, keys *curve.KeyPair, serverKey curve.PublicKey) error {
	return h.Do(func() error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		opts := []zmq4.Option{zmq4.WithDialerMaxRetries(3)}
		ep := zmtpguard.Endpoint(endpoint)
		if keys != nil {
			opts = append(opts, zmq4.WithSecurity(curve.NewClient(*keys, serverKey)))
			ep = zmtpguard.CurveEndpoint(endpoint)
		}
		d := zmq4.NewDealer(ctx, opts...)
		defer d.Close()
		return d.Dial(ep)
	})
}

// TestClosedMeshArchives ships archives on a three-host mesh closed with
// CURVE: logd-a ships, logd-b collects, and they admit each other; the
// intruder's logd-x (which knows their public keys, but whose own key
// they do not admit) ships and collects too. A raw socket on the bridge
// sees every frame.
//
// It proves: a's archive reaches b byte-identical, and never crosses the
// wire in plaintext; b collects nothing from x, x nothing from a; dialling
// a's FileMQ socket, or its Harmony task socket, from x's host fails at
// the handshake with x's key and with no key (while b's key, from the same
// host, gets through), and a counts the refusals.
func TestClosedMeshArchives(t *testing.T) {
	t.Parallel()
	lan := netns.New(t, 3)
	hA, hB, hX := lan.Hosts[0], lan.Hosts[1], lan.Hosts[2]
	sn := startSniffer(t, lan.Switch)

	keys := map[string]curve.KeyPair{}
	for _, n := range []string{"a", "b", "x"} {
		kp, err := curve.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = kp
	}
	dirA, dirB := keyDir(t, keys, "a", "b"), keyDir(t, keys, "b", "a")
	dirX := keyDir(t, keys, "x", "a", "b")

	var rnd [8]byte
	rand.Read(rnd[:])
	markerA := "archive-marker-a-" + hex.EncodeToString(rnd[:4])
	markerX := "archive-marker-x-" + hex.EncodeToString(rnd[4:])
	sn.watch(markerA, markerX)
	shipA, shipX := t.TempDir(), t.TempDir()
	collectB, collectX := t.TempDir(), t.TempDir()
	name := "api-2026-11-27T04-00-00.000.log.gz"
	sumA := archiveWithMarker(t, filepath.Join(shipA, name), markerA)
	archiveWithMarker(t, filepath.Join(shipX, name), markerX)

	port := meshtest.Config(t).BeaconPort
	a := newLogd(t, hA, port, "logd-a", "--keys", dirA, "--ship-to", shipA, "--ship-poll", "100ms")
	b := newLogd(t, hB, port, "logd-b", "--keys", dirB, "--collect", collectB)
	x := newLogd(t, hX, port, "logd-x", "--keys", dirX, "--ship-to", shipX, "--ship-poll", "100ms", "--collect", collectX)
	for _, l := range []*logd{a, b, x} {
		l.start()
	}
	for _, l := range []*logd{a, b, x} {
		l.waitUp(60 * time.Second)
	}
	waitConverged(t, 60*time.Second, a, b)
	inboxFile := filepath.Join(collectB, "logd-a", "api", name)
	waitFor(t, 60*time.Second, "a's archive on b", func() bool { return fileSHA(inboxFile) == sumA },
		func() string { return tail(b.output(), 4000) })

	// The intruder's host dials a's FileMQ socket directly.
	var st fileMQStatus
	if err := a.admin("/filemq/status", &st); err != nil || st.Shipping == nil {
		t.Fatalf("a's FileMQ status: %+v, %v", st, err)
	}
	u, err := url.Parse(st.Shipping.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "tcp://" + net.JoinHostPort(hA.IP, u.Port())
	refusedBefore := st.Shipping.Refused
	kx, kb := keys["x"], keys["b"]
	if err := dialFrom(hX, endpoint, &kx, keys["a"].Public); err == nil {
		t.Error("the intruder's key got through a's FileMQ handshake")
	}
	if err := dialFrom(hX, endpoint, nil, curve.PublicKey{}); err == nil {
		t.Error("a client without keys got through a's FileMQ handshake")
	}
	if err := dialFrom(hX, endpoint, &kb, keys["a"].Public); err != nil {
		t.Errorf("control: b's key from the intruder's host was refused: %v", err)
	}
	waitFor(t, 10*time.Second, "a to count both refusals", func() bool {
		return a.admin("/filemq/status", &st) == nil && st.Shipping.Refused >= refusedBefore+2
	}, func() string { return tail(a.output(), 4000) })
	if !strings.Contains(a.output(), "curve client refused") {
		t.Errorf("a did not log the refused key")
	}

	// The same for a's Harmony task socket: x's key and no key are refused
	// at the handshake, b's key gets through, and a's worker counts.
	self, err := a.peers()
	if err != nil {
		t.Fatal(err)
	}
	hdr := self.Self.Headers["X-HARMONY"]
	harmonyEP := "tcp://" + net.JoinHostPort(hA.IP, hdr[strings.LastIndex(hdr, ":")+1:])
	var ws struct{ Refused, Tasks int64 }
	if err := a.admin("/harmony/stats", &ws); err != nil {
		t.Fatal(err)
	}
	refusedBefore = uint64(ws.Refused)
	if err := dialFrom(hX, harmonyEP, &kx, keys["a"].Public); err == nil {
		t.Error("the intruder's key got through a's Harmony handshake")
	}
	if err := dialFrom(hX, harmonyEP, nil, curve.PublicKey{}); err == nil {
		t.Error("a client without keys got through a's Harmony handshake")
	}
	if err := dialFrom(hX, harmonyEP, &kb, keys["a"].Public); err != nil {
		t.Errorf("control: b's key from the intruder's host was refused by a's worker: %v", err)
	}
	waitFor(t, 10*time.Second, "a's worker to count both refusals", func() bool {
		return a.admin("/harmony/stats", &ws) == nil && uint64(ws.Refused) >= refusedBefore+2
	}, func() string { return tail(a.output(), 4000) })
	if ws.Tasks != 0 {
		t.Errorf("a's worker ran %d tasks", ws.Tasks)
	}

	// Through the mesh, x neither ships to b nor fetches from a.
	waitFor(t, 20*time.Second, "b to refuse x's key", func() bool {
		return strings.Contains(b.output(), "peer's key is not admitted")
	}, func() string { return tail(b.output(), 4000) })
	if got := regularFiles(collectB); len(got) != 1 || got[0] != inboxFile {
		t.Errorf("b collected %v, want only a's archive", got)
	}
	if got := regularFiles(collectX); len(got) != 0 {
		t.Errorf("the intruder collected %v", got)
	}
	if err := a.admin("/filemq/status", &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Shipping.Clients {
		if c.Name != "logd-b" {
			t.Errorf("a ships to %q", c.Name)
		}
	}

	// Control: the sniffer does see plaintext between the hosts.
	control := "archive-control-" + hex.EncodeToString(rnd[:])
	sn.watch(control)
	sendPlain(t, hA, hX, control)
	waitFor(t, 10*time.Second, "the sniffer to see the control message", func() bool { return sn.saw(control) }, sn.String)

	ss := sn.stop()
	report(t, "archives on a closed mesh: %d frames, %d bytes sniffed; CURVE greetings: %d", ss.frames, ss.bytes, ss.curveGreetings)
	if ss.curveGreetings == 0 {
		t.Errorf("the sniffer saw no CURVE greeting (%s)", sn)
	}
	for _, m := range []string{markerA, markerX} {
		if sn.saw(m) {
			t.Errorf("archive content %q crossed the wire in plaintext", m)
		}
	}
}
