package logpub

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// TestHubAcceptOutOfFiles: with the process out of file descriptors, the
// Hub's Accept fails for as long as that lasts. The Hub must neither spin
// on it nor log each failure, and must serve again once descriptors are
// free. The file limit is the process's, so the test runs in a child
// process of its own.
func TestHubAcceptOutOfFiles(t *testing.T) {
	if os.Getenv("LOGPUB_EMFILE_CHILD") == "" {
		t.Parallel()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHubAcceptOutOfFiles$", "-test.v")
		cmd.Env = append(os.Environ(), "LOGPUB_EMFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestHubAcceptOutOfFiles") {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "accept_test.go") {
				t.Log(strings.TrimSpace(l))
			}
		}
		return
	}
	var logs syncBuffer
	h := startHub(t, func(c *HubConfig) {
		c.Capture.Dir = t.TempDir()
		c.Log = zerolog.New(&logs)
	})
	// Leave room for a few descriptors only, then take them all.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: uint64(len(ents) + 16), Max: lim.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	var hold []*os.File
	release := func() {
		for _, f := range hold {
			f.Close()
		}
		hold = nil
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		hold = append(hold, f)
	}
	// One descriptor for our end of a connection: the kernel completes it,
	// and the Hub cannot accept it.
	hold[len(hold)-1].Close()
	hold = hold[:len(hold)-1]
	_, addr, _ := splitEndpoint(h.WriterEndpoint())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // the failures begin
	cpu0, start := processCPU(), time.Now()
	time.Sleep(time.Second)
	cpu, wall := processCPU()-cpu0, time.Since(start)
	// One line per listener and run of failures. The publish listener
	// fails too if its loop makes its first Accept only now: Linux takes
	// the new descriptor before it looks for a connection.
	failLogs := strings.Count(logs.String(), "accept failed")
	writerLogs := strings.Count(logs.String(), "logpub "+addr+": accept failed")
	// A loop retrying at once keeps a core busy (≥ 1 s here); paced, the
	// process is all but idle.
	if cpu > wall/5 {
		t.Errorf("process used %v of CPU in %v while out of descriptors: the accept loop spins", cpu, wall)
	}
	if writerLogs != 1 || failLogs > 2 {
		t.Errorf("%d log lines about failed accepts (%d of the writer endpoint), want 1 per listener for the whole run:\n%s", failLogs, writerLogs, logs.String())
	}
	t.Logf("out of descriptors for %v: %v of CPU, %d log lines", wall.Round(time.Millisecond), cpu.Round(time.Millisecond), failLogs)

	// Descriptors free again: the waiting connection is accepted and a
	// Writer's event captured.
	release()
	c.Close()
	w := NewWriter(WriterOptions{Endpoint: h.WriterEndpoint(), Service: "after"})
	w.Write([]byte(`{"level":"info","message":"served again"}` + "\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil || w.Stats().Acked != 1 {
		t.Fatalf("writer after the shortage: %v, stats %+v", err, w.Stats())
	}
	waitFor(t, "the end of the failures logged", func() bool { return strings.Contains(logs.String(), "accepting again") })
}
