package filemq

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fastDir returns a temporary directory on tmpfs when there is one, so
// that the large-file tests do not wait on a disk.
func fastDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "filemq-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// writeRandom writes size pseudo-random bytes (seeded) to path. Large
// files repeat one random block of a length that is no multiple of any
// chunk size, so that a chunk written at a wrong offset still shows in the
// file's hash, while generating hundreds of MiB stays cheap under -race.
func writeRandom(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, min(size, 1<<20+4093))
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(block)
	w := bufio.NewWriterSize(f, 1<<20)
	for left := size; left > 0; left -= int64(len(block)) {
		if _, err := w.Write(block[:min(left, int64(len(block)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// treeSizes maps each regular file under dir (outside .filemq) to its size.
func treeSizes(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file renamed meanwhile: the next poll sees it
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == stateDir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				out[filepath.ToSlash(rel)] = fi.Size()
			}
		}
		return nil
	})
	return out
}

// waitTree waits until inbox holds exactly the files of want (hashes),
// polling on names and sizes and hashing only when those match, so that
// polling does not re-read hundreds of MiB every few milliseconds.
func waitTree(t testing.TB, d time.Duration, what, inbox string, want map[string]string, wantSizes map[string]int64) {
	t.Helper()
	waitFor(t, d, what, func() bool {
		got := treeSizes(t, inbox)
		if len(got) != len(wantSizes) {
			return false
		}
		for k, v := range wantSizes {
			if got[k] != v {
				return false
			}
		}
		return sameTree(want, treeHashes(t, inbox))
	})
}

// treeHashes maps each regular file under dir (outside .filemq) to its SHA-256.
func treeHashes(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == stateDir {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

func testServer(t testing.TB) *Server {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.StableAge = 0
	cfg.ChunkSize = 256 << 10 // several chunks even for small test files
	cfg.Logger = testLogger(t)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testClient(t testing.TB, inbox string) *Client {
	t.Helper()
	cfg := DefaultClientConfig(inbox)
	cfg.Heartbeat = 100 * time.Millisecond
	cfg.Timeout = 2 * time.Second
	cfg.Logger = testLogger(t)
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustNot(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func relNames(m map[string]string) string {
	var b strings.Builder
	for k := range m {
		b.WriteString(k + " ")
	}
	return b.String()
}
