package filemq

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(helperEnv) != "":
		helperMain()
		return
	case os.Getenv(serverHelperEnv) != "":
		serverHelperMain()
		return
	}
	goleak.VerifyTestMain(m)
}

// TestShipTree ships many small files and a large one that existed before
// the client subscribed (resync), then live changes: a new file, a file
// that shrinks (exact copy, no stale tail) and a delete.
func TestShipTree(t *testing.T) {
	src, inbox := fastDir(t), fastDir(t)
	for i := range 150 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("d%d/s%03d.log", i%7, i)), int64(i*i*3), uint64(i))
	}
	mustNot(t, os.WriteFile(filepath.Join(src, "empty"), nil, 0o644))
	big := int64(200 << 20)
	if testing.Short() {
		big = 20 << 20
	}
	writeRandom(t, filepath.Join(src, "big/archive.bin"), big, 999)
	want := treeHashes(t, src)

	cfg := DefaultServerConfig() // 1 MiB chunks, as in production
	cfg.PollInterval, cfg.StableAge, cfg.Logger = 50*time.Millisecond, 0, testLogger(t)
	s, err := NewServer(cfg)
	mustNot(t, err)
	defer s.Close()
	mustNot(t, s.Publish(src, "/"))
	c := testClient(t, inbox)
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(s.Endpoint()))
	waitTree(t, 90*time.Second, "the tree to arrive", inbox, want, treeSizes(t, src))

	// Live changes reach the connected client.
	writeRandom(t, filepath.Join(src, "d1/new.log"), 70_000, 7)
	writeRandom(t, filepath.Join(src, "d2/s002.log"), 5, 8) // was 12 bytes
	mustNot(t, os.Remove(filepath.Join(src, "d3/s003.log")))
	want = treeHashes(t, src)
	waitTree(t, 20*time.Second, "live changes", inbox, want, treeSizes(t, src))

	st, err := s.Stats()
	mustNot(t, err)
	if len(st.Clients) != 1 || st.Clients[0].Sent > st.Clients[0].Granted {
		t.Fatalf("server stats: %+v", st)
	}
	cs := c.Stats()
	if !cs.Connected || cs.Rejected != 0 || cs.Corrupt != 0 {
		t.Fatalf("client stats: %+v", cs)
	}
	// Clean goodbye: Close sends KTHXBAI and the server forgets the client
	// at once, long before its 30 s timeout.
	mustNot(t, c.Close())
	waitFor(t, 5*time.Second, "the server to drop the client", func() bool {
		st, err := s.Stats()
		mustNot(t, err)
		return len(st.Clients) == 0
	})
}

// TestSubscriptionFilteredAtServer checks that only files under the
// subscribed path travel: the server filters, the client never sees others.
func TestSubscriptionFilteredAtServer(t *testing.T) {
	src, inbox := fastDir(t), fastDir(t)
	writeRandom(t, filepath.Join(src, "a/one"), 1000, 1)
	writeRandom(t, filepath.Join(src, "b/two"), 500_000, 2)
	writeRandom(t, filepath.Join(src, "ab/three"), 500_000, 3)
	s := testServer(t)
	mustNot(t, s.Publish(src, "/logs"))
	c := testClient(t, inbox)
	mustNot(t, c.Subscribe("/logs/a"))
	mustNot(t, c.Connect(s.Endpoint()))
	waitFor(t, 10*time.Second, "a/one", func() bool { return len(treeHashes(t, inbox)) == 1 })
	writeRandom(t, filepath.Join(src, "b/four"), 10, 4)
	writeRandom(t, filepath.Join(src, "a/five"), 10, 5)
	waitFor(t, 10*time.Second, "a/five", func() bool { return len(treeHashes(t, inbox)) == 2 })
	got := treeHashes(t, inbox)
	if _, ok := got["one"]; !ok {
		t.Fatalf("inbox holds %s", relNames(got))
	}
	if _, ok := got["five"]; !ok {
		t.Fatalf("inbox holds %s", relNames(got))
	}
	if rb := c.Stats().ReceivedBytes; rb != 1010 {
		t.Fatalf("client received %d chunk bytes, want 1010 (only the subscribed files)", rb)
	}
	// A subscription added while connected resyncs its path at once.
	mustNot(t, c.Subscribe("/logs/b"))
	waitFor(t, 10*time.Second, "the files of /logs/b", func() bool { return len(treeHashes(t, inbox)) == 4 })
	got = treeHashes(t, inbox)
	if _, ok := got["two"]; !ok {
		t.Fatalf("inbox holds %s", relNames(got))
	}
}

// TestMapAndClientName publishes through ServerConfig.Map (skipping some
// files, moving others) and checks the client's name in the server's stats.
func TestMapAndClientName(t *testing.T) {
	src, inbox := fastDir(t), fastDir(t)
	writeRandom(t, filepath.Join(src, "api-1.gz"), 100, 1)
	writeRandom(t, filepath.Join(src, "api.log"), 100, 2)
	writeRandom(t, filepath.Join(src, "escape"), 100, 3)
	cfg := DefaultServerConfig()
	cfg.PollInterval, cfg.StableAge = 50*time.Millisecond, 0
	cfg.Map = func(rel string) (string, bool) {
		switch rel {
		case "api-1.gz":
			return "api/" + rel, true
		case "escape":
			return "../escape", true // refused: not local
		}
		return "", false
	}
	s, err := NewServer(cfg)
	mustNot(t, err)
	defer s.Close()
	mustNot(t, s.Publish(src, "/"))
	ccfg := DefaultClientConfig(inbox)
	ccfg.Name = "collector-1"
	c, err := NewClient(ccfg)
	mustNot(t, err)
	defer c.Close()
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(s.Endpoint()))
	waitFor(t, 10*time.Second, "api/api-1.gz", func() bool { _, ok := treeHashes(t, inbox)["api/api-1.gz"]; return ok })
	st, err := s.Stats()
	mustNot(t, err)
	if st.Files != 1 || len(st.Clients) != 1 || st.Clients[0].Name != "collector-1" {
		t.Fatalf("stats %+v", st)
	}
	if got := treeHashes(t, inbox); len(got) != 1 {
		t.Fatalf("inbox holds %s", relNames(got))
	}
}
