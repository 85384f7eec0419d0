package mesh_test

// Mesh-size benchmarks run their nodes in child processes of up to 25 nodes
// each (the test binary again, see runSim): a full mesh of n nodes holds
// about 2·n² sockets, more than one process may open here for n = 100.
// Beacons are real UDP on loopback, on a port reserved for the benchmark.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

const simPerProcess = 25

// runSim hosts MESH_SIM_NODES nodes of a mesh of MESH_SIM_TOTAL. It prints
// "GOSSIP addr" when its first node serves gossip, "CONVERGED ms" once each
// of its nodes sees all the others, and "STATS bytes" (sent + received by
// its nodes) for every line read on stdin; it closes its nodes at EOF.
func runSim() {
	env := func(k string) string { return os.Getenv("MESH_SIM_" + k) }
	count, _ := strconv.Atoi(env("NODES"))
	total, _ := strconv.Atoi(env("TOTAL"))
	port, _ := strconv.Atoi(env("BEACON_PORT"))
	evasive, _ := time.ParseDuration(env("EVASIVE"))
	start := time.Now()
	nodes := make([]*mesh.Node, count)
	for i := range nodes {
		cfg := mesh.DefaultConfig()
		cfg.Name = fmt.Sprintf("sim%d-%d", os.Getpid(), i)
		cfg.BeaconPort = port
		cfg.Interface, cfg.BroadcastAddr, cfg.Bind = "lo", "127.255.255.255", "127.0.0.1"
		cfg.EvasiveTimeout, cfg.ExpiredTimeout = evasive, 20*evasive
		if i == 0 && env("GOSSIP_BIND") != "" {
			cfg.GossipBind = env("GOSSIP_BIND")
		} else if j := env("JOIN"); j != "" {
			cfg.Join = []string{j}
		}
		n, err := mesh.New(cfg)
		if err == nil {
			err = n.Start(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for range n.Events() {
			}
		}()
		nodes[i] = n
		if i == 0 && cfg.GossipBind != "" {
			fmt.Printf("GOSSIP %s\n", n.GossipAddr())
			os.Setenv("MESH_SIM_JOIN", n.GossipAddr())
		}
	}
	for {
		done := true
		for _, n := range nodes {
			if len(n.Peers()) < total-1 {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	fmt.Printf("CONVERGED %d\n", time.Since(start).Milliseconds())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var sum uint64
		for _, n := range nodes {
			s := n.Stats()
			sum += s.BytesSent + s.BytesReceived
		}
		fmt.Printf("STATS %d\n", sum)
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
}

type simProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func (p *simProc) expect(tb testing.TB, prefix string, timeout time.Duration) string {
	tb.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok || !strings.HasPrefix(l, prefix) {
			tb.Fatalf("sim child: got %q, want %s...", l, prefix)
		}
		return strings.TrimSpace(strings.TrimPrefix(l, prefix))
	case <-time.After(timeout):
		tb.Fatalf("sim child: no %s within %v", prefix, timeout)
	}
	return ""
}

// simCluster starts a mesh of n nodes in child processes. wan turns beacons
// off: the first node serves gossip and all others join it.
func simCluster(tb testing.TB, n int, wan bool, evasive time.Duration) (procs []*simProc, started time.Time) {
	tb.Helper()
	port := meshtest.Config(tb).BeaconPort
	if wan {
		port = 0
	}
	join := ""
	started = time.Now()
	for left := n; left > 0; left -= simPerProcess {
		env := map[string]string{"NODES": strconv.Itoa(min(left, simPerProcess)), "TOTAL": strconv.Itoa(n),
			"BEACON_PORT": strconv.Itoa(port), "EVASIVE": evasive.String(), "JOIN": join}
		if wan && len(procs) == 0 {
			env["GOSSIP_BIND"] = "127.0.0.1:0"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), "MESH_CHILD=sim")
		for k, v := range env {
			cmd.Env = append(cmd.Env, "MESH_SIM_"+k+"="+v)
		}
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		p := &simProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
		go func() {
			defer close(p.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
		}()
		tb.Cleanup(func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
		if wan && len(procs) == 0 {
			join = p.expect(tb, "GOSSIP ", 20*time.Second)
		}
		procs = append(procs, p)
	}
	return procs, started
}

// BenchmarkConvergence measures the time from starting n nodes until each
// sees all the others, with the default beacon interval (1 s).
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{10, 50, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				procs, started := simCluster(b, n, false, 5*time.Second)
				for _, p := range procs {
					p.expect(b, "CONVERGED ", 120*time.Second)
				}
				total += time.Since(started)
				for _, p := range procs {
					p.stdin.Close()
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/converge")
		})
	}
}

// BenchmarkIdleTraffic measures what an idle, converged mesh costs each node
// in bytes per second (TCP and beacons, sent + received). lan: beacons every
// second (the default), which also show liveness, so no PINGs flow. wan: no
// beacons (one gossip seed), so liveness is PING/PING-OK, with a 1 s evasive
// timeout here (5 s by default).
func BenchmarkIdleTraffic(b *testing.B) {
	for _, mode := range []string{"lan", "wan"} {
		for _, n := range []int{25, 50, 100} {
			b.Run(fmt.Sprintf("%s/nodes=%d", mode, n), func(b *testing.B) {
				evasive := 5 * time.Second
				if mode == "wan" {
					evasive = time.Second
				}
				procs, _ := simCluster(b, n, mode == "wan", evasive)
				for _, p := range procs {
					p.expect(b, "CONVERGED ", 120*time.Second)
				}
				time.Sleep(3 * time.Second) // let the HELLO burst and first pings pass
				sample := func() (sum uint64) {
					for _, p := range procs {
						fmt.Fprintln(p.stdin, "STATS")
						v, _ := strconv.ParseUint(p.expect(b, "STATS ", 10*time.Second), 10, 64)
						sum += v
					}
					return sum
				}
				b.ResetTimer()
				var rate float64
				for range b.N {
					before, t0 := sample(), time.Now()
					time.Sleep(5 * time.Second) // the measurement window
					rate += float64(sample()-before) / time.Since(t0).Seconds() / float64(n)
				}
				rate /= float64(b.N)
				b.ReportMetric(rate, "B/s/node")
				b.ReportMetric(rate/float64(n-1), "B/s/node/peer")
			})
		}
	}
}
