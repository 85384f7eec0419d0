package filemq

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netHosts is two network namespaces joined by a veth pair, each end
// rate-limited so that a transfer lasts long enough to be cut.
type netHosts struct {
	t            *testing.T
	nsA, nsB     string
	devA         string
	addrA, addrB string
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetHosts creates the namespaces, or skips when the test cannot run:
// it needs root and iproute2. Under CI=true as root it must run.
func newNetHosts(t *testing.T) *netHosts {
	t.Helper()
	_, errIP := exec.LookPath("ip")
	_, errTC := exec.LookPath("tc")
	if os.Geteuid() != 0 || errIP != nil || errTC != nil {
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("CI as root needs ip and tc (iproute2): %v %v", errIP, errTC)
		}
		t.Skip("needs root and iproute2 (ip, tc)")
	}
	id := os.Getpid() % 100000
	h := &netHosts{
		t: t, nsA: fmt.Sprintf("fmqA%d", id), nsB: fmt.Sprintf("fmqB%d", id),
		devA: fmt.Sprintf("fqa%d", id), addrA: fmt.Sprintf("10.%d.%d.1", 100+id%100, id/100%250),
	}
	h.addrB = strings.TrimSuffix(h.addrA, ".1") + ".2"
	devB := fmt.Sprintf("fqb%d", id)
	ipCmd(t, "netns", "add", h.nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.nsA).Run() })
	ipCmd(t, "netns", "add", h.nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.nsB).Run() })
	ipCmd(t, "link", "add", h.devA, "type", "veth", "peer", "name", devB)
	ipCmd(t, "link", "set", h.devA, "netns", h.nsA)
	ipCmd(t, "link", "set", devB, "netns", h.nsB)
	ipCmd(t, "-n", h.nsA, "addr", "add", h.addrA+"/24", "dev", h.devA)
	ipCmd(t, "-n", h.nsB, "addr", "add", h.addrB+"/24", "dev", devB)
	for _, ns := range []struct{ ns, dev string }{{h.nsA, h.devA}, {h.nsB, devB}} {
		ipCmd(t, "-n", ns.ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", ns.ns, "link", "set", ns.dev, "up")
		if out, err := exec.Command("tc", "-n", ns.ns, "qdisc", "add", "dev", ns.dev, "root",
			"tbf", "rate", "100mbit", "burst", "256kb", "latency", "50ms").CombinedOutput(); err != nil {
			t.Fatalf("tc: %v: %s", err, out)
		}
	}
	return h
}

func (h *netHosts) linkA(state string) { ipCmd(h.t, "-n", h.nsA, "link", "set", h.devA, state) }

// start runs the test binary in namespace ns with env, returning its stdout lines.
func (h *netHosts) start(ns string, env ...string) <-chan string {
	h.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	mustNot(h.t, err)
	mustNot(h.t, cmd.Start())
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody is listening for more; keep draining the pipe
			}
		}
		io.Copy(io.Discard, out)
	}()
	h.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	return lines
}

func waitLine(t *testing.T, lines <-chan string, prefix string, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("process ended before a line starting with %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			t.Fatalf("no line starting with %q within %v", prefix, d)
		}
	}
}

// TestNetworkCut runs server and client in two network namespaces, takes
// the link down in the middle of a large file, brings it back, and checks
// that the transfer completes byte for byte.
func TestNetworkCut(t *testing.T) {
	t.Parallel() // mostly waits on a rate-limited link
	h := newNetHosts(t)
	src, inbox := fastDir(t), fastDir(t)
	for i := range 10 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("a/s%d", i)), 5000, uint64(i))
	}
	const big = 48 << 20
	writeRandom(t, filepath.Join(src, "z/big"), big, 77)
	want := treeHashes(t, src)

	srv := h.start(h.nsA, serverHelperEnv+"=1", "FILEMQ_SRC="+src, "FILEMQ_BIND=tcp://"+h.addrA+":0")
	endpoint := waitLine(t, srv, "tcp://", 20*time.Second)
	cli := h.start(h.nsB, helperEnv+"=1", "FILEMQ_ENDPOINT="+endpoint, "FILEMQ_INBOX="+inbox)

	part := filepath.Join(inbox, stateDir, "partial", partialName("z/big"))
	waitFor(t, 60*time.Second, "a fifth of the big file", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() >= big/5
	})
	h.linkA("down")
	waitLine(t, cli, Disconnected.String(), 20*time.Second)
	st, err := os.Stat(part)
	mustNot(t, err)
	if st.Size() >= big {
		t.Fatal("the file completed before the cut")
	}
	h.linkA("up")
	waitTree(t, 90*time.Second, "the tree after the cut", inbox, want, treeSizes(t, src))
}
