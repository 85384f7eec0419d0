// Package netns builds small multi-host networks for tests out of Linux
// network namespaces: each host is a namespace with one interface (eth0)
// on a shared /24, and the hosts are joined by a bridge that lives in a
// namespace of its own, so the test touches nothing of the machine's own
// network. Programs run on a host with `ip netns exec`.
//
//	lan := netns.New(t, 3)          // skips unless root with iproute2 (fails if CI=true)
//	cmd := lan.Hosts[0].Command(ctx, "/path/to/logd", "run", "--interface", "eth0")
//
// Namespaces get unique names and are deleted when the test ends, even when
// it fails.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Host is one namespace on the network.
type Host struct {
	NS        string // namespace name, for `ip netns exec`
	Iface     string // its interface: "eth0"
	IP        string // its address, e.g. "10.77.3.2"
	Broadcast string // the subnet's broadcast address, e.g. "10.77.3.255"
	// Cable is the host's link when the network was made by NewCabled,
	// to delay or drop what the host sends; nil on a veth link.
	Cable *Cable
}

// Net is a set of hosts on one bridged /24.
type Net struct {
	Hosts  []*Host
	Switch string // namespace holding the bridge
}

// Available reports why namespaces cannot be used here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("netns: needs root (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netns: iproute2 'ip' not found: %w", err)
	}
	return nil
}

// Require skips the test when namespaces are unavailable, or fails it when
// CI=true (where they must run).
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: multi-host tests must run)", err)
		}
		t.Skipf("skipping multi-host test: %v", err)
	}
}

// New creates n hosts on a bridge, each linked by a veth pair, and deletes
// them when the test ends.
func New(t testing.TB, n int) *Net { return build(t, n, false) }

// NewCabled is New with each host linked by a Cable (TAP devices copied by
// the test process) instead of a veth pair, so that a test can delay a
// host's traffic where the kernel has no tc netem.
func NewCabled(t testing.TB, n int) *Net { return build(t, n, true) }

func build(t testing.TB, n int, cabled bool) *Net {
	t.Helper()
	Require(t)
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(rnd[:])
	nw := &Net{Switch: "lm" + id + "-sw"}
	// Each test gets its own subnet, which keeps its addresses apart in
	// logs; the namespaces isolate them anyway.
	subnet := fmt.Sprintf("10.%d.%d", 64+int(rnd[0])%128, rnd[1])
	t.Cleanup(func() { nw.delete() })
	run(t, "ip", "netns", "add", nw.Switch)
	run(t, "ip", "-n", nw.Switch, "link", "set", "lo", "up")
	run(t, "ip", "-n", nw.Switch, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", nw.Switch, "link", "set", "br0", "up")
	for i := range n {
		h := &Host{
			NS:        fmt.Sprintf("lm%s-h%d", id, i),
			Iface:     "eth0",
			IP:        fmt.Sprintf("%s.%d", subnet, i+2),
			Broadcast: subnet + ".255",
		}
		nw.Hosts = append(nw.Hosts, h)
		port := fmt.Sprintf("p%d", i)
		run(t, "ip", "netns", "add", h.NS)
		run(t, "ip", "-n", h.NS, "link", "set", "lo", "up")
		if cabled {
			c, err := newCable(h.NS, h.Iface, nw.Switch, port)
			if err != nil {
				t.Fatal(err)
			}
			h.Cable = c
			t.Cleanup(c.Close) // before the namespaces go (cleanups run last first)
		} else {
			run(t, "ip", "-n", nw.Switch, "link", "add", port, "type", "veth", "peer", "name", h.Iface, "netns", h.NS)
		}
		run(t, "ip", "-n", nw.Switch, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "-n", h.NS, "addr", "add", h.IP+"/24", "brd", "+", "dev", h.Iface)
		run(t, "ip", "-n", h.NS, "link", "set", h.Iface, "up")
	}
	return nw
}

// Command returns a command that runs name with args inside the host's
// namespace. It is killed when ctx ends.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// delete removes every namespace of the network; deleting the switch
// namespace removes the bridge and the veth pairs with it.
func (nw *Net) delete() {
	for _, h := range nw.Hosts {
		_ = exec.Command("ip", "netns", "del", h.NS).Run()
	}
	_ = exec.Command("ip", "netns", "del", nw.Switch).Run()
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netns: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func listNamespaces() (string, error) {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	return string(out), err
}

// Do runs f on an OS thread switched into the host's namespace. Sockets f
// creates (net.Listen, net.Dial) belong to the host's network for good, so
// a test can serve or connect "from" a host without a child process.
func (h *Host) Do(f func() error) error { return doIn(h.NS, f) }

// doIn runs f on an OS thread switched into namespace ns.
func doIn(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// If switching back fails, the thread stays locked and dies with
		// this goroutine rather than serve others in the wrong namespace.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", ns, err)
			return
		}
		ferr := f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
