package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
)

func simMeshNoCleanup(tb testing.TB, n int, beaconEvery time.Duration) []*Node {
	return simMeshWith(tb, n, beaconEvery, nil)
}

// simMeshWith starts n nodes on a beacon hub, tweak adjusting each config.
func simMeshWith(tb testing.TB, n int, beaconEvery time.Duration, tweak func(*Config)) []*Node {
	tb.Helper()
	hub := &beaconHub{}
	nodes := make([]*Node, n)
	for i := range nodes {
		cfg := simConfig(fmt.Sprintf("sim%03d", i), beaconEvery)
		if tweak != nil {
			tweak(&cfg)
		}
		nd, err := New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		nd.beacons = hub.attach()
		if err := nd.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		nodes[i] = nd
	}
	return nodes
}

// BenchmarkWhisper sends 200-byte WHISPERs from one node to another and,
// in the same run, the same messages over a raw TCP stream with a 4-byte
// length prefix and buffered writes: the ratio says what the mesh costs.
func BenchmarkWhisper(b *testing.B) {
	b.Run("null", func(b *testing.B) { benchWhisper(b, nil) })
	b.Run("curve", func(b *testing.B) {
		ka, err := curve.GenerateKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		kb, err := curve.GenerateKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		allow := curve.NewAllowList(ka.Public, kb.Public)
		keys := []curve.KeyPair{ka, kb}
		benchWhisper(b, func(c *Config) {
			c.Curve = &Curve{Keys: keys[0], Authorize: allow.Authorize}
			keys = keys[1:]
		})
	})
}

func benchWhisper(b *testing.B, tweak func(*Config)) {
	payload := make([]byte, 200)
	cpu0 := cpuTime()
	raw := rawTCPRate(b, b.N, payload)
	rawCPU := float64(cpuTime()-cpu0) / float64(b.N)

	nodes := simMeshWith(b, 2, 50*time.Millisecond, tweak)
	defer closeAll(nodes)
	waitConverged(b, nodes, 20*time.Second)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range nodes[1].Events() {
			if ev.Type == EventWhisper {
				got.Add(1)
			}
		}
	}()
	go func() {
		for range nodes[0].Events() {
		}
	}()
	to := nodes[1].UUID()
	const window = 4096 // messages in flight: the sender waits beyond it
	b.ResetTimer()
	start, cpu1 := time.Now(), cpuTime()
	for i := range b.N {
		for int64(i)-got.Load() > window {
			time.Sleep(50 * time.Microsecond) // back-pressure poll
		}
		if err := nodes[0].Whisper(to, payload); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
		if time.Since(start) > time.Minute {
			b.Fatalf("only %d of %d whispers arrived (stats %+v)", got.Load(), b.N, nodes[0].Stats())
		}
	}
	mesh := float64(b.N) / time.Since(start).Seconds()
	meshCPU := float64(cpuTime()-cpu1) / float64(b.N)
	b.StopTimer()
	b.ReportMetric(mesh, "whisper_msg/s")
	b.ReportMetric(raw, "rawtcp_msg/s")
	b.ReportMetric(mesh/raw, "ratio_vs_raw")
	// CPU time per message (both ends, all goroutines) is steadier than
	// wall time on a shared machine.
	b.ReportMetric(meshCPU, "whisper_cpu_ns/msg")
	b.ReportMetric(rawCPU, "rawtcp_cpu_ns/msg")
	b.ReportMetric(rawCPU/meshCPU, "cpu_ratio_vs_raw")
}

// cpuTime is the user + system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawTCPRate sends n length-prefixed messages over loopback TCP and returns
// messages per second, received and decoded.
func rawTCPRate(b *testing.B, n int, payload []byte) float64 {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	recvd := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recvd <- err
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var hdr [4]byte
		buf := make([]byte, 64<<10)
		for range n {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				recvd <- err
				return
			}
			if _, err := io.ReadFull(r, buf[:binary.BigEndian.Uint32(hdr[:])]); err != nil {
				recvd <- err
				return
			}
		}
		recvd <- nil
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	start := time.Now()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	for range n {
		w.Write(hdr[:])
		w.Write(payload)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-recvd; err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}
