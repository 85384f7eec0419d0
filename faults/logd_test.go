package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/netns"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
	"github.com/logmesh/logmesh/timer"
)

// logd is one logd process, on a namespace host or on 127.0.0.1. It can be
// killed and started again on the same data directory.
type logd struct {
	t       *testing.T
	name    string
	host    *netns.Host // nil: the test's own network, on 127.0.0.1
	dataDir string
	args    []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan error
	stderr *lockedBuffer
	starts int
}

// lockedBuffer collects a child's stderr while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 4<<20 { // keep the tail readable, memory bounded
		b.buf.Reset()
		b.buf.WriteString("[... earlier output cut ...]\n")
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLogd prepares a logd on host (nil: loopback) with the test's mesh
// settings; extra flags follow the common ones. Start it with start.
func newLogd(t *testing.T, host *netns.Host, beaconPort int, name string, extra ...string) *logd {
	t.Helper()
	dir := t.TempDir()
	args := []string{"run", "--data-dir", dir, "--name", name,
		"--beacon-port", strconv.Itoa(beaconPort), "--beacon-interval", "100ms",
		"--evasive", "1s", "--expired", "4s", "--log-level", "info",
		"--writer-endpoint", "ipc://" + filepath.Join(dir, "w.sock"),
		"--rotate-every", "0"}
	if host != nil {
		args = append(args, "--interface", host.Iface, "--bind", host.IP, "--broadcast", host.Broadcast)
	} else {
		args = append(args, "--interface", "lo", "--bind", "127.0.0.1", "--broadcast", "127.255.255.255",
			"--pub-bind", "tcp://127.0.0.1:0", "--ship-bind", "tcp://127.0.0.1:0", "--harmony-bind", "127.0.0.1:0",
			"--http", "127.0.0.1:0")
	}
	l := &logd{t: t, name: name, host: host, dataDir: dir, args: append(args, extra...)}
	t.Cleanup(func() {
		l.kill()
		if t.Failed() {
			t.Logf("stderr of %s (last start):\n%s", l.name, tail(l.output(), 6000))
		}
	})
	return l
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start runs the process; a previous one must have exited.
func (l *logd) start() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var cmd *exec.Cmd
	if l.host != nil {
		// ip netns exec execs logd, so the pid is logd's own.
		cmd = exec.Command("ip", append([]string{"netns", "exec", l.host.NS, bins.logd}, l.args...)...)
	} else {
		cmd = exec.Command(bins.logd, l.args...)
	}
	l.stderr = &lockedBuffer{}
	cmd.Stderr = l.stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", l.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	l.cmd, l.done = cmd, done
	l.starts++
}

func (l *logd) output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stderr == nil {
		return ""
	}
	return l.stderr.String()
}

func (l *logd) pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cmd.Process.Pid
}

// running reports whether the process has not exited.
func (l *logd) running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cmd == nil {
		return false
	}
	select {
	case err := <-l.done:
		l.done <- err
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the exit; no-op when not running.
func (l *logd) kill() {
	l.mu.Lock()
	cmd, done := l.cmd, l.done
	l.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	done <- err
}

// stop sends SIGTERM and fails the test unless logd exits cleanly.
func (l *logd) stop() {
	l.t.Helper()
	l.mu.Lock()
	cmd, done := l.cmd, l.done
	l.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			l.t.Fatalf("%s exited with %v after SIGTERM", l.name, err)
		}
	case <-time.After(20 * time.Second):
		l.t.Fatalf("%s did not stop within 20 s of SIGTERM", l.name)
	}
}

func (l *logd) writerEndpoint() string { return "ipc://" + filepath.Join(l.dataDir, "w.sock") }
func (l *logd) captureDir() string     { return filepath.Join(l.dataDir, "capture") }

// admin GETs path from logd's admin socket (a unix socket, reachable from
// any network namespace) and decodes the JSON reply into out.
func (l *logd) admin(path string, out any) error {
	sock := filepath.Join(l.dataDir, "logd.sock")
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://logd" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type peersReply struct {
	Self  mesh.PeerInfo   `json:"self"`
	Peers []mesh.PeerInfo `json:"peers"`
}

func (l *logd) peers() (peersReply, error) {
	var r peersReply
	err := l.admin("/peers", &r)
	return r, err
}

func (l *logd) hubStats() (logpub.HubStats, error) {
	var s logpub.HubStats
	err := l.admin("/logpub/stats", &s)
	return s, err
}

func (l *logd) timerSnapshot() (timer.Snapshot, error) {
	var s timer.Snapshot
	err := l.admin("/timer", &s)
	return s, err
}

// logdCmd runs a logd subcommand against l's data directory.
func (l *logd) cmdline(args ...string) (string, error) {
	cmd := exec.Command(bins.logd, append(args, "--data-dir", l.dataDir)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("logd %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// waitUp waits until logd answers on its admin socket.
func (l *logd) waitUp(d time.Duration) peersReply {
	l.t.Helper()
	var r peersReply
	waitFor(l.t, d, l.name+" admin socket", func() bool {
		var err error
		r, err = l.peers()
		return err == nil
	}, func() string { return tail(l.output(), 4000) })
	return r
}

// converged reports whether every logd lists every other one as a peer,
// with the other's current UUID.
func converged(ls ...*logd) (bool, string) {
	ids := map[string]string{}
	replies := map[string]peersReply{}
	for _, l := range ls {
		r, err := l.peers()
		if err != nil {
			return false, fmt.Sprintf("%s: %v", l.name, err)
		}
		ids[l.name] = r.Self.ID.String()
		replies[l.name] = r
	}
	var why []string
	for _, l := range ls {
		seen := map[string]bool{}
		for _, p := range replies[l.name].Peers {
			seen[p.ID.String()] = true
		}
		for _, o := range ls {
			if o != l && !seen[ids[o.name]] {
				why = append(why, fmt.Sprintf("%s does not list %s", l.name, o.name))
			}
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// waitConverged waits until every logd sees every other one and returns
// how long it took.
func waitConverged(t *testing.T, d time.Duration, ls ...*logd) time.Duration {
	t.Helper()
	start := time.Now()
	var why string
	waitFor(t, d, "peers to converge", func() bool {
		var ok bool
		ok, why = converged(ls...)
		return ok
	}, func() string { return why })
	return time.Since(start)
}

// fileExists is used for the archive checks.
func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
