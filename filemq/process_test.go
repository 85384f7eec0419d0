package filemq

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary run as a FILEMQ client process (see
// helperMain), so that tests can kill -9 a real client.
const helperEnv = "FILEMQ_TEST_CLIENT"

// helperMain runs a client on FILEMQ_INBOX subscribed to "/" of
// FILEMQ_ENDPOINT and prints its events until it is killed.
func helperMain() {
	cfg := DefaultClientConfig(os.Getenv("FILEMQ_INBOX"))
	cfg.Heartbeat = 100 * time.Millisecond
	cfg.Timeout = 3 * time.Second
	c, err := NewClient(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := c.Subscribe("/"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := c.Connect(os.Getenv("FILEMQ_ENDPOINT")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for e := range c.Events() {
		fmt.Println(e.Type, e.Path, e.Err)
	}
}

// serverHelperEnv makes the test binary run as a FILEMQ server process
// (see serverHelperMain), for tests across network namespaces.
const serverHelperEnv = "FILEMQ_TEST_SERVER"

// serverHelperMain publishes FILEMQ_SRC as "/" on FILEMQ_BIND, prints the
// bound endpoint on the first line of stdout, and serves until killed.
func serverHelperMain() {
	cfg := DefaultServerConfig()
	cfg.Endpoint = os.Getenv("FILEMQ_BIND")
	cfg.StableAge = 0
	cfg.ClientTimeout = 3 * time.Second
	cfg.SendTimeout = 2 * time.Second
	s, err := NewServer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := s.Publish(os.Getenv("FILEMQ_SRC"), "/"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.Endpoint())
	select {}
}

func startClientProcess(t *testing.T, endpoint, inbox string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "FILEMQ_ENDPOINT="+endpoint, "FILEMQ_INBOX="+inbox)
	cmd.Stderr = os.Stderr
	mustNot(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// clientShipping returns the server's record of the client other than skip.
func clientShipping(t *testing.T, s *Server, skip string) (ClientShipping, bool) {
	st, err := s.Stats()
	mustNot(t, err)
	for _, c := range st.Clients {
		if c.ID != skip {
			return c, true
		}
	}
	return ClientShipping{}, false
}

// TestKillResume kills a client process with SIGKILL in the middle of a
// large file, restarts it, and checks on the server's byte counters that
// the completed files are not sent again and the partial file resumes.
func TestKillResume(t *testing.T) {
	src, inbox := fastDir(t), fastDir(t)
	for i := range 20 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("a/small%02d", i)), 10_000+int64(i), uint64(i))
	}
	const big = 160 << 20
	writeRandom(t, filepath.Join(src, "z/big.bin"), big, 42) // sorted last: sent last
	want := treeHashes(t, src)

	s := testServer(t)
	mustNot(t, s.Publish(src, "/"))
	first := startClientProcess(t, s.Endpoint(), inbox)
	var cs ClientShipping
	waitFor(t, 30*time.Second, "the big file to be a quarter sent", func() bool {
		c, ok := clientShipping(t, s, "")
		cs = c
		return ok && c.Current == "/z/big.bin" && c.CurrentOffset >= big/4
	})
	mustNot(t, first.Process.Signal(syscall.SIGKILL))
	first.Wait()
	if cs.CurrentOffset >= big {
		t.Fatalf("the big file was fully sent before the kill")
	}
	part := filepath.Join(inbox, stateDir, "partial", partialName("z/big.bin"))
	st, err := os.Stat(part)
	mustNot(t, err)
	held := st.Size()
	if held == 0 || held >= big {
		t.Fatalf("partial file holds %d bytes", held)
	}
	got := treeHashes(t, inbox)
	if len(got) != 20 {
		t.Fatalf("before restart the inbox holds %d files, want the 20 small ones: %s", len(got), relNames(got))
	}

	startClientProcess(t, s.Endpoint(), inbox)
	waitTree(t, 90*time.Second, "the tree to be complete", inbox, want, treeSizes(t, src))
	// Bytes and files on the wire after the restart, over every later
	// session (a loaded machine may cut one by heartbeat timeout).
	var sent, files uint64
	waitFor(t, 10*time.Second, "the eof of the big file", func() bool {
		st, err := s.Stats()
		mustNot(t, err)
		sent, files = 0, 0
		for _, c := range st.Clients {
			if c.ID != cs.ID {
				sent += c.Sent
				files += c.ShippedFiles
			}
		}
		return files >= 1
	})
	if files != 1 {
		t.Fatalf("after restart the server shipped %d files; want only the partial one", files)
	}
	// Exactly the missing bytes, unless a session was cut on the way: then
	// at most one credit window more (what was in flight on the cut session).
	credit := uint64(DefaultClientConfig("").Credit)
	if sent < uint64(big-held) || sent > uint64(big-held)+credit {
		t.Fatalf("after restart the server sent %d bytes; want the %d missing of the big file (held %d)",
			sent, big-held, held)
	}
}

// TestServerRestartResume closes the server in the middle of a large file
// and starts a new one on the same endpoint: the client reconnects by
// itself and the new server sends only the rest of the file.
func TestServerRestartResume(t *testing.T) {
	src, inbox := fastDir(t), fastDir(t)
	const big = 64 << 20
	writeRandom(t, filepath.Join(src, "big"), big, 5)
	want := treeHashes(t, src)
	cfg := DefaultServerConfig()
	cfg.PollInterval, cfg.StableAge, cfg.Logger = 50*time.Millisecond, 0, testLogger(t)
	s1, err := NewServer(cfg)
	mustNot(t, err)
	mustNot(t, s1.Publish(src, "/"))
	c := testClient(t, inbox)
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(s1.Endpoint()))
	part := filepath.Join(inbox, stateDir, "partial", partialName("big"))
	waitFor(t, 30*time.Second, "a quarter of the file", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() >= big/4
	})
	mustNot(t, s1.Close())

	cfg.Endpoint = s1.Endpoint()
	s2, err := NewServer(cfg)
	mustNot(t, err)
	defer s2.Close()
	mustNot(t, s2.Publish(src, "/"))
	waitTree(t, 60*time.Second, "the file after the restart", inbox, want, treeSizes(t, src))
	var cs ClientShipping
	waitFor(t, 10*time.Second, "the new server's eof", func() bool {
		var ok bool
		cs, ok = clientShipping(t, s2, "")
		return ok && cs.ShippedFiles == 1
	})
	if cs.Sent == 0 || cs.Sent > big-big/4 {
		t.Fatalf("the new server sent %d bytes; want only the rest (< %d)", cs.Sent, big-big/4)
	}
	if st := c.Stats(); st.Sessions < 2 {
		t.Fatalf("client sessions %d, want a reconnect", st.Sessions)
	}
}
