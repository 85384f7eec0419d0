package faults

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/netns"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/timer"
)

// The kernel may lack sch_netem (tc netem): packet loss is then injected
// with nftables (numgen random), which needs only nf_tables, and delay by
// the hosts' netns Cables (TAP devices copied by the test process).
var netemProbe struct {
	once sync.Once
	err  error
}

// netemAvailable reports whether tc netem works here, probing once in a
// throwaway namespace.
func netemAvailable(t *testing.T) error {
	netemProbe.once.Do(func() {
		ns := fmt.Sprintf("lmprobe%d", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			netemProbe.err = fmt.Errorf("ip netns add: %v: %s", err, out)
			return
		}
		defer exec.Command("ip", "netns", "del", ns).Run()
		out, err := exec.Command("tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").CombinedOutput()
		if err != nil {
			netemProbe.err = fmt.Errorf("tc netem: %v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	return netemProbe.err
}

// impair makes host h's outgoing traffic lose lossPct% of its packets and
// wait delay: with tc netem, or else with nftables for the loss and the
// host's Cable for the delay (the test must then have made a cabled
// network). It returns how, for the figures.
func impair(t *testing.T, h *netns.Host, lossPct int, delay time.Duration) string {
	t.Helper()
	if netemAvailable(t) == nil {
		a := []string{"-n", h.NS, "qdisc", "replace", "dev", h.Iface, "root", "netem",
			"loss", fmt.Sprintf("%d%%", lossPct), "delay", fmt.Sprintf("%dms", delay.Milliseconds())}
		if out, err := exec.Command("tc", a...).CombinedOutput(); err != nil {
			t.Fatalf("tc %s: %v\n%s", strings.Join(a, " "), err, out)
		}
		return "tc netem"
	}
	if delay > 0 {
		if h.Cable == nil {
			t.Fatalf("no tc netem (%v) and %s has no netns Cable to delay its traffic", netemAvailable(t), h.NS)
		}
		h.Cable.SetDelay(delay)
	}
	nft(t, h, fmt.Sprintf(`table inet logmesh_faults {
	chain out {
		type filter hook output priority 0; policy accept;
		oifname "%s" numgen random mod 100 < %d counter drop
	}
}
`, h.Iface, lossPct))
	return "nftables loss, netns Cable delay"
}

// unimpair removes what impair added.
func unimpair(t *testing.T, h *netns.Host) {
	t.Helper()
	if netemAvailable(t) == nil {
		if out, err := exec.Command("tc", "-n", h.NS, "qdisc", "del", "dev", h.Iface, "root").CombinedOutput(); err != nil {
			t.Fatalf("tc qdisc del: %v\n%s", err, out)
		}
		return
	}
	if h.Cable != nil {
		h.Cable.SetDelay(0)
	}
	nft(t, h, "delete table inet logmesh_faults\n")
}

// droppedPackets returns how many packets the nftables loss rule of h
// dropped (0 when netem does the loss).
func droppedPackets(h *netns.Host) int {
	out, err := exec.Command("ip", "netns", "exec", h.NS, "nft", "list", "table", "inet", "logmesh_faults").Output()
	if err != nil {
		return 0
	}
	var n int
	if i := strings.Index(string(out), "counter packets "); i >= 0 {
		fmt.Sscanf(string(out[i+len("counter packets "):]), "%d", &n)
	}
	return n
}

func nft(t *testing.T, h *netns.Host, script string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("no tc netem (%v) and no nft to inject packet loss: %v (make deps installs nftables)", netemAvailable(t), err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\n%s", h.NS, err, out, script)
	}
}

// switchPort is the bridge port of host i in the switch namespace
// (internal/netns names them p0, p1...).
func switchPort(i int) string { return fmt.Sprintf("p%d", i) }

// partition cuts host i off the bridge (its switch port goes down, as a
// pulled cable or a dead switch port); heal plugs it back.
func partition(t *testing.T, lan *netns.Net, i int) {
	t.Helper()
	link(t, lan.Switch, switchPort(i), "down")
}

func heal(t *testing.T, lan *netns.Net, i int) {
	t.Helper()
	link(t, lan.Switch, switchPort(i), "up")
}

func link(t *testing.T, ns, dev, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", ns, "link", "set", dev, state).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set %s %s: %v\n%s", ns, dev, state, err, out)
	}
}

// liveReader follows one logd's live stream for one service and counts
// what it receives and the sequence gaps (events the hub dropped for it).
type liveReader struct {
	mu       sync.Mutex
	received uint64
	gaps     uint64
	err      error
	st       *logpub.Stream
	done     chan struct{}
}

// followFrom subscribes from host h (nil: this network) to endpoint.
func followFrom(t *testing.T, h *netns.Host, endpoint, service string) *liveReader {
	t.Helper()
	r := &liveReader{done: make(chan struct{})}
	sub := func() error {
		st, err := logpub.Subscribe(context.Background(), endpoint,
			logpub.SubscribeOptions{Follow: true, Filter: logpub.Filter{Services: []string{service}}})
		r.st = st
		return err
	}
	var err error
	if h != nil {
		err = h.Do(sub) // the TCP connection belongs to h's network
	} else {
		err = sub()
	}
	if err != nil {
		t.Fatalf("subscribe to %s: %v", endpoint, err)
	}
	go func() {
		defer close(r.done)
		var gd logpub.GapDetector
		for {
			e, err := r.st.Next()
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
			g := gd.Check(&e)
			r.mu.Lock()
			r.received++
			r.gaps += g
			r.mu.Unlock()
		}
	}()
	t.Cleanup(r.close)
	return r
}

func (r *liveReader) counts() (received, gaps uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received, r.gaps, r.err
}

func (r *liveReader) close() {
	r.st.Close()
	<-r.done
}

// waitLive waits until the live reader has received, or the hub has
// counted as dropped for subscribers, every event published (want of the
// hub's stats), and checks the sums. Gaps are what the reader sees by
// itself: drops at the very end of a stream show only in the hub's count
// until a later event arrives.
func waitLive(t *testing.T, l *logd, r *liveReader, want func(logpub.HubStats) uint64) (recv, gaps, drops uint64) {
	t.Helper()
	var hs logpub.HubStats
	waitFor(t, 60*time.Second, "the live stream to account for every event", func() bool {
		var err error
		if hs, err = l.hubStats(); err != nil {
			return false
		}
		recv, gaps, _ = r.counts()
		return recv+hs.SubscriberDrops >= want(hs)
	}, func() string {
		_, _, err := r.counts()
		return fmt.Sprintf("received %d, gaps %d, stream error %v; hub %+v", recv, gaps, err, hs)
	})
	if recv+hs.SubscriberDrops != want(hs) {
		t.Errorf("live stream: received %d + dropped for subscribers %d != %d published", recv, hs.SubscriberDrops, want(hs))
	}
	if gaps > hs.SubscriberDrops {
		t.Errorf("live stream: %d gaps seen, but the hub counted %d drops", gaps, hs.SubscriberDrops)
	}
	return recv, gaps, hs.SubscriberDrops
}

// liveStuck waits up to d for the live reader to account for every event
// published and returns how many are neither received nor counted as
// dropped (events held in the hub's queue for the subscriber).
func liveStuck(l *logd, r *liveReader, want func(logpub.HubStats) uint64, d time.Duration) uint64 {
	deadline := time.Now().Add(d)
	for {
		hs, err := l.hubStats()
		recv, _, _ := r.counts()
		if err == nil && recv+hs.SubscriberDrops >= want(hs) {
			return 0
		}
		if time.Now().After(deadline) {
			if err != nil {
				return 0
			}
			return want(hs) - recv - hs.SubscriberDrops
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// pubEndpoint returns logd's X-LOGD-PUB with the wildcard host resolved.
func pubEndpoint(t *testing.T, l *logd) string {
	t.Helper()
	r := l.waitUp(30 * time.Second)
	ep := r.Self.Headers["X-LOGD-PUB"]
	host := "127.0.0.1"
	if l.host != nil {
		host = l.host.IP
	}
	return strings.Replace(ep, "*", host, 1)
}

// fileSHA returns the hex SHA-256 of a file, "" if unreadable.
func fileSHA(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// archives lists the completed archives (*.log.gz) in a capture dir by
// service-relative path, with their checksums.
func archives(dir string) map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".log.gz") && !strings.HasPrefix(n, ".") {
			// api-2026-11-27T04-00-00.000.log.gz is service "api".
			if i := strings.Index(n, "-20"); i > 0 {
				out[filepath.Join(n[:i], n)] = fileSHA(filepath.Join(dir, n))
			}
		}
	}
	return out
}

// shippedIdentical reports whether every archive of the shipper is on the
// collector, byte-identical, and how many there are. The collector files
// them under DIR/<name>/, or DIR/<name>-<uuid prefix>/ while two peers
// share the name (a restarted logd next to its not yet expired former
// self), so every such inbox counts; inboxes tells how many were used.
func shippedIdentical(shipDir, collectDir, shipper string) (ok bool, n int, why string, inboxes int) {
	want := archives(shipDir)
	dirs, _ := filepath.Glob(filepath.Join(collectDir, shipper+"*"))
	used := map[string]bool{}
	var bad []string
	for rel, sum := range want {
		found := false
		for _, d := range dirs {
			if fileSHA(filepath.Join(d, rel)) == sum {
				found, used[d] = true, true
				break
			}
		}
		if !found {
			bad = append(bad, rel)
		}
	}
	sort.Strings(bad)
	return len(bad) == 0 && len(want) > 0, len(want), strings.Join(bad, ", "), len(used)
}

// fireCheck is what the fires of one schedule show over a window.
type fireCheck struct {
	Occurrences int // occurrences in the window
	Fires       int // fires of them, all nodes together
	Duplicates  int // occurrences fired more than once (on one node, or cluster-wide for cluster scope)
	Missing     int // occurrences not fired at all
	dup         []string
}

// checkFires counts the fires of schedule name in [from, to) from the
// nodes' recent fires. Cluster scope: once in the cluster; node scope:
// once on each node.
func checkFires(ls []*logd, name string, every time.Duration, cluster bool, from, to time.Time) (fireCheck, error) {
	perNode := map[string]map[int64]int{}
	detail := map[int64][]string{}
	var snaps []timer.Snapshot
	for _, l := range ls {
		s, err := l.timerSnapshot()
		if err != nil {
			return fireCheck{}, fmt.Errorf("%s: %w", l.name, err)
		}
		snaps = append(snaps, s)
		// A node keeps its last 100 fires: check only what all still hold.
		if len(s.RecentFires) >= 100 && !s.RecentFires[0].At.Add(every).Before(from) {
			from = s.RecentFires[0].At.Add(every)
		}
	}
	for i, l := range ls {
		s := snaps[i]
		key := l.name
		if cluster {
			key = "cluster"
		}
		if perNode[key] == nil {
			perNode[key] = map[int64]int{}
		}
		for _, f := range s.RecentFires {
			if f.Name == name && !f.At.Before(from) && f.At.Before(to) {
				perNode[key][f.At.UnixNano()]++
				detail[f.At.UnixNano()] = append(detail[f.At.UnixNano()], fmt.Sprintf("%s fired %s at %s late=%v",
					l.name, f.At.Format("15:04:05.000"), f.FiredAt.Format("15:04:05.000"), f.Late))
			}
		}
	}
	var c fireCheck
	first := from.Truncate(every)
	if first.Before(from) {
		first = first.Add(every)
	}
	for _, occs := range perNode {
		for at := first; at.Before(to); at = at.Add(every) {
			c.Occurrences++
			n := occs[at.UnixNano()]
			c.Fires += n
			switch {
			case n == 0:
				c.Missing++
			case n > 1:
				c.Duplicates++
				c.dup = append(c.dup, strings.Join(detail[at.UnixNano()], ", "))
			}
		}
	}
	return c, nil
}

// addTimers adds a cluster and a node schedule, every 500 ms, on l; the
// schedules replicate to every timer node of the mesh.
func addTimers(t *testing.T, l *logd) {
	t.Helper()
	for _, a := range [][]string{
		{"timer", "add", "beat", "--every", "500ms", "--scope", string(timer.ScopeCluster)},
		{"timer", "add", "local", "--every", "500ms", "--scope", string(timer.ScopeNode)},
	} {
		if _, err := l.cmdline(a...); err != nil {
			t.Fatal(err)
		}
	}
}

// waitTimers waits until every node knows both schedules.
func waitTimers(t *testing.T, ls ...*logd) {
	t.Helper()
	waitFor(t, 30*time.Second, "schedules replicated", func() bool {
		for _, l := range ls {
			s, err := l.timerSnapshot()
			if err != nil || len(s.Schedules) != 2 {
				return false
			}
		}
		return true
	}, nil)
}
