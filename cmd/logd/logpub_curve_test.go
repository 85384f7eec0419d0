package main

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// TestKeyedLogdsCloseLogStreams: with --keys, a logd's log hub speaks only
// CURVE with admitted keys. logd-a's dashboard (--http-cluster) follows
// logd-b's hub with the mesh keys; a plaintext subscriber is refused, a
// subscriber with an admitted key and logd-b's X-PUBLICKEY is served.
func TestKeyedLogdsCloseLogStreams(t *testing.T) {
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
	addr := freeTCPAddr(t)
	a, _ := startLogdNamed(t, bin, "logd-a", port, addr, "--http-cluster", "--keys", dirA)
	b, writerB := startLogdNamed(t, bin, "logd-b", port, "", "--keys", dirB)

	var peerB mesh.PeerInfo
	deadline := time.Now().Add(30 * time.Second)
	for {
		ra, errA := peersJSON(t, bin, a.dataDir)
		if errA == nil && len(ra.Peers) == 1 && ra.Peers[0].Headers["X-LOGD-PUB"] != "" {
			peerB = ra.Peers[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logd-a never saw logd-b: %+v %v\n%s", ra, errA, b.stderr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	pubB := mesh.ResolveEndpoint(peerB.Headers["X-LOGD-PUB"], peerB.Endpoint)
	keyB, err := curve.ParsePublicKey(peerB.Headers["X-PUBLICKEY"])
	if err != nil {
		t.Fatal(err)
	}
	kpA, err := curve.LoadKeyPair(filepath.Join(dirA, "a"+curve.SecretKeyExt))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := logpub.Subscribe(ctx, pubB, logpub.SubscribeOptions{Follow: true}); !errors.Is(err, logpub.ErrCurveRequired) {
		t.Fatalf("plaintext subscription to a keyed logd: %v", err)
	}
	st, err := logpub.Subscribe(ctx, pubB, logpub.SubscribeOptions{Follow: true,
		Curve: &logpub.CurveClient{Keys: kpA, Server: keyB}})
	if err != nil {
		t.Fatalf("keyed subscription: %v", err)
	}
	defer st.Close()

	base := "http://" + addr
	waitHTTP(t, a, base+"/api/v1/peers", http.StatusOK)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream?node=logd-b&service=db", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dash := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		dash <- line
	}()
	// logd-a's dashboard follows logd-b once it has seen it: log until a
	// line gets through to it.
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerB, Service: "db"})
	defer w.Close()
	log := zerolog.New(w)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case line := <-dash:
			if !strings.Contains(line, `"message":"closed"`) {
				t.Fatalf("logd-a's dashboard streamed %q", line)
			}
			e, err := st.Next()
			if err != nil || !strings.Contains(string(e.Line), `"message":"closed"`) {
				t.Fatalf("keyed subscriber: %q %v", e.Line, err)
			}
			var cs logpub.CurveStats
			if err := newAdminClient(b.dataDir).do(ctx, "GET", "/logpub/curve", nil, &cs); err != nil {
				t.Fatal(err)
			}
			if cs.Handshakes < 2 || cs.Refused < 1 {
				t.Fatalf("logd-b's CURVE counters %+v: want ≥2 handshakes (dashboard, subscriber), ≥1 refusal", cs)
			}
			return
		case <-tick.C:
			log.Warn().Int("i", i).Msg("closed")
		case <-ctx.Done():
			t.Fatalf("no event of logd-b reached logd-a's dashboard\na:\n%s\nb:\n%s", a.stderr, b.stderr)
		}
	}
}
