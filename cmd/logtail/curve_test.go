package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/curvetest"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// keyDir writes a key directory as `logd keygen` and an operator would:
// own key pair plus the public keys of the admitted nodes.
func keyDir(t *testing.T, name string, own curve.KeyPair, admitted ...curve.KeyPair) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, _, err := curve.SaveKeyPair(dir, name, own); err != nil {
		t.Fatal(err)
	}
	for i, kp := range admitted {
		peer := fmt.Sprintf("peer%d", i)
		pub, _, err := curve.SaveKeyPair(t.TempDir(), peer, kp)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, peer+".key"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLogtailConnectWithKeys(t *testing.T) {
	k := curvetest.KeyPairs(t, 3)
	hubKeys, tailKeys, intruder := k[0], k[1], k[2]
	cfg := logpub.DefaultHubConfig()
	cfg.WriterEndpoint = ""
	cfg.Curve = &logpub.CurveServer{Keys: hubKeys, Authorize: curve.NewAllowList(tailKeys.Public).Authorize}
	h, err := logpub.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	line := `{"level":"warn","message":"keyed-marker"}`
	if err := h.Ingest("api", []byte(line)); err != nil {
		t.Fatal(err)
	}
	target := h.PubEndpoint() + "|" + hubKeys.Public.String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	out, errOut, code := logtail(t, ctx, "--json", "--keys", keyDir(t, "tail", tailKeys, hubKeys), "--connect", target)
	if code != 0 || out != line+"\n" {
		t.Fatalf("keyed logtail: code %d, out %q, stderr %s", code, out, errOut)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no keys", []string{"--connect", h.PubEndpoint()}, "requires CURVE"},
		{"no keys, follow", []string{"-f", "--connect", h.PubEndpoint()}, "requires CURVE"},
		{"intruder", []string{"--keys", keyDir(t, "intruder", intruder, hubKeys), "--connect", target}, "not authorized"},
		{"intruder, follow", []string{"-f", "--keys", keyDir(t, "intruder2", intruder, hubKeys), "--connect", target}, "not authorized"},
		{"keys, hub key unknown", []string{"--keys", keyDir(t, "tail2", tailKeys), "--connect", h.PubEndpoint()}, "no public key"},
	} {
		start := time.Now()
		out, errOut, code := logtail(t, ctx, append([]string{"--json"}, tc.args...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%s: code %d, out %q, stderr %s", tc.name, code, out, errOut)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("%s: took %v", tc.name, d)
		}
	}
	if s := h.CurveStats(); s.Handshakes != 1 || s.Unauthorized != 2 {
		t.Fatalf("hub curve stats %+v", s)
	}
}

// TestLogtailClosedMesh: on a mesh closed with CURVE, logtail --keys finds
// the logd and reads it; without keys it says why it finds none and exits.
func TestLogtailClosedMesh(t *testing.T) {
	k := curvetest.KeyPairs(t, 2)
	logdKeys, tailKeys := k[0], k[1]
	allow := curve.NewAllowList(logdKeys.Public, tailKeys.Public)
	mcfg := meshtest.Config(t)
	mcfg.Name = "closed"
	mcfg.Curve = &mesh.Curve{Keys: logdKeys, Authorize: allow.Authorize}
	node, err := mesh.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := logpub.DefaultHubConfig()
	cfg.WriterEndpoint = ""
	cfg.PubEndpoint = "tcp://0.0.0.0:0"
	cfg.Node, cfg.NodeName = node.UUID(), "closed"
	cfg.Curve = &logpub.CurveServer{Keys: logdKeys, Authorize: allow.Authorize}
	h, err := logpub.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	node.SetHeader("X-LOGD-PUB", "tcp://*:"+h.PubEndpoint()[strings.LastIndex(h.PubEndpoint(), ":")+1:])
	if err := node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	line := `{"level":"error","message":"closed-mesh-marker"}`
	h.Ingest("api", []byte(line))

	meshArgs := []string{"--json", "--beacon-port", strconv.Itoa(mcfg.BeaconPort), "--interface", "lo",
		"--broadcast", "127.255.255.255", "--bind", "127.0.0.1", "--wait", "2s"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, errOut, code := logtail(t, ctx, append(meshArgs, "--keys", keyDir(t, "tail", tailKeys, logdKeys))...)
	if code != 0 || out != line+"\n" {
		t.Fatalf("keyed logtail on the closed mesh: code %d, out %q, stderr %s", code, out, errOut)
	}
	for _, follow := range []bool{false, true} {
		args := meshArgs
		if follow {
			args = append(args, "-f")
		}
		out, errOut, code = logtail(t, ctx, args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "require CURVE; give --keys") {
			t.Fatalf("logtail without keys (follow %v): code %d, out %q, stderr %s", follow, code, out, errOut)
		}
	}
}
