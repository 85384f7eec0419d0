package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/filemq"
	"github.com/logmesh/logmesh/internal/meshtest"
)

// keyDirs runs `logd keygen` for each name into its own directory and
// copies into every directory the public keys of admit (a closed mesh's
// allow-list).
func keyDirs(t *testing.T, bin string, names []string, admit ...string) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	for _, n := range names {
		dirs[n] = t.TempDir()
		if out, err := exec.Command(bin, "keygen", "--dir", dirs[n], "--name", n).CombinedOutput(); err != nil {
			t.Fatalf("keygen %s: %v\n%s", n, err, out)
		}
	}
	for _, n := range names {
		for _, a := range admit {
			if a != n {
				copyFile(t, filepath.Join(dirs[a], a+curve.PublicKeyExt), filepath.Join(dirs[n], a+curve.PublicKeyExt))
			}
		}
	}
	return dirs
}

func shipStatusOf(dataDir string) (shipStatus, error) {
	var st shipStatus
	err := newAdminClient(dataDir).do(context.Background(), "GET", "/filemq/status", nil, &st)
	return st, err
}

// regularFiles lists the files under dir, outside FileMQ's state directories.
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

// TestClosedMeshArchives: two logds closed with the same keys (--keys) ship
// an archive byte-identical over CURVE, while a third logd whose key they
// do not admit can neither ship to the collector nor fetch from the
// shipper, not even when it knows the shipper's FileMQ endpoint and key:
// nothing reaches an inbox, and the refusals are counted and logged.
func TestClosedMeshArchives(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	// a and b admit each other; c admits them too, but they do not admit c.
	keys := keyDirs(t, bin, []string{"a", "b", "c"}, "a", "b")
	shipA, collectB := t.TempDir(), t.TempDir()
	shipC, collectC := t.TempDir(), t.TempDir()
	rel := "api/api-2026-11-27T04-00-00.000.log.gz"
	sum := writeArchive(t, filepath.Join(shipA, filepath.Base(rel)), 3<<20+5)
	writeArchive(t, filepath.Join(shipC, "evil-2026-11-27T04-00-00.000.log.gz"), 1000)

	a := startLogd(t, bin, port, "logd-a", "--keys", keys["a"], "--ship-to", shipA, "--ship-poll", "100ms", "--writer-endpoint", "")
	b := startLogd(t, bin, port, "logd-b", "--keys", keys["b"], "--collect", collectB, "--writer-endpoint", "")
	c := startLogd(t, bin, port, "logd-c", "--keys", keys["c"], "--ship-to", shipC, "--ship-poll", "100ms",
		"--collect", collectC, "--writer-endpoint", "")
	diag := func() string {
		return "stderr a:\n" + a.stderr.String() + "\nstderr b:\n" + b.stderr.String() + "\nstderr c:\n" + c.stderr.String()
	}

	pollUntil(t, 30*time.Second, "the archive on the collector, over CURVE", func() bool {
		return fileSHA(filepath.Join(collectB, "logd-a", rel)) == sum
	}, diag)

	// The intruder, with c's keys and a's endpoint and public key, and a
	// client with no keys at all, both try to fetch from a.
	st, err := shipStatusOf(a.dataDir)
	if err != nil || st.Shipping == nil {
		t.Fatalf("shipper status: %+v, %v", st, err)
	}
	kpC, _, err := curve.LoadKeyDir(keys["c"])
	if err != nil {
		t.Fatal(err)
	}
	kpA, _, err := curve.LoadKeyDir(keys["a"])
	if err != nil {
		t.Fatal(err)
	}
	var clients []*filemq.Client
	var inboxes []string
	for _, keyed := range []bool{true, false} {
		cfg := filemq.DefaultClientConfig(t.TempDir())
		inboxes = append(inboxes, cfg.Inbox)
		if keyed {
			cfg.Keys, cfg.ServerKey = &kpC, kpA.Public
		}
		cl, err := filemq.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Subscribe("/"); err != nil {
			t.Fatal(err)
		}
		if err := cl.Connect(st.Shipping.Endpoint); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	pollUntil(t, 20*time.Second, "the shipper to refuse both intruders", func() bool {
		st, err := shipStatusOf(a.dataDir)
		return err == nil && st.Shipping.Refused >= 2 && clients[0].Stats().Refused >= 1 && clients[1].Stats().Refused >= 1
	}, diag)
	for i, cl := range clients {
		if s := cl.Stats(); s.Sessions != 0 || s.ReceivedFiles != 0 || len(regularFiles(inboxes[i])) != 0 {
			t.Fatalf("an intruder fetched: %+v", s)
		}
	}
	if !strings.Contains(a.stderr.String(), "curve client refused") {
		t.Errorf("the shipper did not log the refused key\n%s", a.stderr)
	}

	// c never ships to b, nor fetches from a through the mesh: b refuses
	// c's key (logged), and nothing of c's reaches b's collection.
	pollUntil(t, 20*time.Second, "b to refuse c's key", func() bool {
		return strings.Contains(b.stderr.String(), "peer's key is not admitted")
	}, diag)
	if got := regularFiles(collectC); len(got) != 0 {
		t.Fatalf("the intruder collected %v", got)
	}
	got := regularFiles(collectB)
	if len(got) != 1 || got[0] != filepath.Join(collectB, "logd-a", rel) {
		t.Fatalf("the collector holds %v, want only a's archive\n%s", got, diag())
	}
	st, err = shipStatusOf(a.dataDir)
	if err != nil || len(st.Shipping.Clients) != 1 || st.Shipping.Clients[0].Name != "logd-b" {
		t.Fatalf("shipper's clients: %+v, %v", st.Shipping, err)
	}
}
