package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
)

func writeArchive(t *testing.T, path string, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, diag())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// TestShipAndCollect runs a shipping logd and a collecting logd as
// processes on one loopback mesh: the collector finds the shipper by its
// X-FILEMQ header and collects its archives (only archives) under
// DIR/<node>/<service>/; `logd ship status` reports both sides.
func TestShipAndCollect(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	ship, collect := t.TempDir(), t.TempDir()
	want := map[string]string{
		"api/api-2026-11-27T04-00-00.000.log.gz": writeArchive(t, filepath.Join(ship, "api-2026-11-27T04-00-00.000.log.gz"), 3<<20),
		"db/db-2026-11-27T04-10-00.000.log":      writeArchive(t, filepath.Join(ship, "db-2026-11-27T04-10-00.000.log"), 1000),
	}
	writeArchive(t, filepath.Join(ship, "api.log"), 100)                                 // live capture file
	writeArchive(t, filepath.Join(ship, ".api-2026-11-27T05-00-00.000.log.gz.tmp"), 100) // being compressed

	a := startLogd(t, bin, port, "logd-a", "--ship-to", ship, "--ship-poll", "100ms", "--writer-endpoint", "")
	b := startLogd(t, bin, port, "logd-b", "--collect", collect, "--writer-endpoint", "")
	inbox := filepath.Join(collect, "logd-a")
	collected := func() bool {
		for rel, sum := range want {
			if fileSHA(filepath.Join(inbox, rel)) != sum {
				return false
			}
		}
		return true
	}
	diag := func() string { return "stderr a:\n" + a.stderr.String() + "\nstderr b:\n" + b.stderr.String() }
	pollUntil(t, 30*time.Second, "the archives on the collector", collected, diag)

	// A new archive is shipped without restart.
	rel := "api/api-2026-11-27T05-00-00.000.log.gz"
	want[rel] = writeArchive(t, filepath.Join(ship, filepath.Base(rel)), 5000)
	pollUntil(t, 30*time.Second, "the new archive", collected, diag)

	var files []string
	filepath.WalkDir(inbox, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, "/.filemq/") {
			r, _ := filepath.Rel(inbox, p)
			files = append(files, r)
		}
		return nil
	})
	if len(files) != len(want) {
		t.Fatalf("collected %v, want only the %d archives", files, len(want))
	}

	var st shipStatus
	out, err := exec.Command(bin, "ship", "status", "--json", "--data-dir", a.dataDir).Output()
	if err != nil {
		t.Fatalf("ship status: %v", err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if st.Shipping == nil || st.Shipping.Files != 3 || len(st.Shipping.Clients) != 1 ||
		st.Shipping.Clients[0].Name != "logd-b" || st.Shipping.Clients[0].ShippedFiles != 3 {
		t.Fatalf("shipper status: %s", out)
	}
	table, err := exec.Command(bin, "ship", "--data-dir", b.dataDir).Output()
	if err != nil {
		t.Fatalf("ship: %v", err)
	}
	if !strings.Contains(string(table), "COLLECTING into "+collect) || !strings.Contains(string(table), "logd-a") {
		t.Fatalf("collector status:\n%s", table)
	}

	for _, p := range []*logdProc{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("logd exited with %v after SIGTERM\n%s", err, p.stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("logd did not stop within 10 s of SIGTERM\n%s", p.stderr)
		}
	}
}

// TestShipCapturedArchives logs through a logpub writer into a logd that
// rotates its capture every 4 KiB and ships its capture directory; polling
// is set to an hour, so the archives can only travel because the hub
// announces them. A collecting logd must end up with every .gz archive,
// byte for byte, and none of the live or uncompressed files.
func TestShipCapturedArchives(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	dataA, collect := t.TempDir(), t.TempDir()
	writerEP := "ipc://" + filepath.Join(dataA, "w.sock")
	capture := filepath.Join(dataA, "capture")
	a := runLogd(t, bin, dataA, "logd-a", port, "--log-level", "debug", "--ship-to", capture, "--ship-poll", "1h",
		"--writer-endpoint", writerEP, "--rotate-size", "4KiB", "--rotate-every", "0")
	b := startLogd(t, bin, port, "logd-b", "--collect", collect, "--writer-endpoint", "")
	diag := func() string { return "stderr a:\n" + a.stderr.String() + "\nstderr b:\n" + b.stderr.String() }

	// Wait until b collects from a, so that announcements reach a live session.
	pollUntil(t, 30*time.Second, "b to collect from a", func() bool {
		var st shipStatus
		err := newAdminClient(b.dataDir).do(context.Background(), "GET", "/filemq/status", nil, &st)
		return err == nil && st.Collecting != nil && len(st.Collecting.Peers) == 1 && st.Collecting.Peers[0].Connected
	}, diag)

	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	log := zerolog.New(w).With().Timestamp().Logger()
	for i := 0; i < 300; i++ {
		log.Warn().Int("i", i).Str("pad", strings.Repeat("x", 50)).Msg("to be shipped")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	archives := func() map[string]string {
		out := map[string]string{}
		ents, _ := os.ReadDir(capture)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".log.gz") {
				out["api/"+e.Name()] = fileSHA(filepath.Join(capture, e.Name()))
			}
		}
		return out
	}
	pollUntil(t, 30*time.Second, "three archives on a", func() bool { return len(archives()) >= 3 }, diag)
	inbox := filepath.Join(collect, "logd-a")
	pollUntil(t, 30*time.Second, "every archive on b", func() bool {
		for rel, sum := range archives() {
			if fileSHA(filepath.Join(inbox, rel)) != sum {
				return false
			}
		}
		return true
	}, diag)
	filepath.WalkDir(inbox, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, "/.filemq/") && !strings.HasSuffix(p, ".log.gz") {
			t.Errorf("collected a file that is not a compressed archive: %s", p)
		}
		return nil
	})
}

func TestArchiveMap(t *testing.T) {
	cases := map[string]string{
		"api-2026-11-27T04-00-00.000.log.gz":      "api/api-2026-11-27T04-00-00.000.log.gz",
		"my-svc-2026-11-27T04-00-00.000.log":      "my-svc/my-svc-2026-11-27T04-00-00.000.log",
		"x/api-2026-11-27T04-00-00.000.log.gz":    "x/api-2026-11-27T04-00-00.000.log.gz",
		"api.log":                                 "",
		".api-2026-11-27T04-00-00.000.log.gz.tmp": "",
		".hidden/api-2026-11-27T04-00-00.000.log": "",
		"notes.txt": "",
	}
	for rel, want := range cases {
		got, ok := archiveMap(false)(rel)
		if (want == "") == ok || got != want {
			t.Errorf("archiveMap(%q) = %q, %v; want %q", rel, got, ok, want)
		}
	}
	if _, ok := archiveMap(true)("api-2026-11-27T04-00-00.000.log"); ok {
		t.Error("gzOnly map published an uncompressed archive")
	}
	if _, ok := archiveMap(true)("api-2026-11-27T04-00-00.000.log.gz"); !ok {
		t.Error("gzOnly map skipped a .gz archive")
	}
}

// TestCollectorKeepsRestartedPeer: a shipping logd killed with SIGKILL
// comes back with a new UUID while its former self has not expired yet;
// its archives still go to DIR/<name>, not to a second directory.
func TestCollectorKeepsRestartedPeer(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	ship, collect := t.TempDir(), t.TempDir()
	first := writeArchive(t, filepath.Join(ship, "api-2026-11-27T04-00-00.000.log.gz"), 1000)
	a := startLogd(t, bin, port, "logd-a", "--ship-to", ship, "--ship-poll", "100ms", "--writer-endpoint", "")
	b := startLogd(t, bin, port, "logd-b", "--collect", collect, "--writer-endpoint", "")
	inbox := filepath.Join(collect, "logd-a", "api")
	diag := func() string { return "stderr a:\n" + a.stderr.String() + "\nstderr b:\n" + b.stderr.String() }
	pollUntil(t, 30*time.Second, "the first archive", func() bool {
		return fileSHA(filepath.Join(inbox, "api-2026-11-27T04-00-00.000.log.gz")) == first
	}, diag)

	a.cmd.Process.Kill()
	<-a.done
	a2 := runLogd(t, bin, a.dataDir, "logd-a", port, "--log-level", "debug", "--ship-to", ship, "--ship-poll", "100ms", "--writer-endpoint", "")
	second := writeArchive(t, filepath.Join(ship, "api-2026-11-27T05-00-00.000.log.gz"), 2000)
	diag = func() string { return "stderr a2:\n" + a2.stderr.String() + "\nstderr b:\n" + b.stderr.String() }
	pollUntil(t, 30*time.Second, "the archive shipped after the restart", func() bool {
		return fileSHA(filepath.Join(inbox, "api-2026-11-27T05-00-00.000.log.gz")) == second
	}, diag)
	ents, err := os.ReadDir(collect)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		dirs = append(dirs, e.Name())
	}
	if len(dirs) != 1 || dirs[0] != "logd-a" {
		t.Fatalf("collected into %v, want only logd-a\n%s", dirs, diag())
	}
}
