package filemq

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const benchSize = 1 << 30

// BenchmarkShip1GiB ships one 1 GiB file over loopback with FILEMQ (server
// and client in this process, inbox on tmpfs when there is one), and in the
// same run copies it with io.Copy over a plain TCP connection into a file.
// It reports both rates, their ratio (FILEMQ from connect to the verified
// file in the inbox, the server having hashed the file when it was
// published), the same ratio counting the server's hashing too, and the
// peak Go heap during the FILEMQ run (server and client together).
func BenchmarkShip1GiB(b *testing.B) {
	src := fastDir(b)
	file := filepath.Join(src, "big.bin")
	writeRandom(b, file, benchSize, 1)
	var tcpTime, hashTime, sendTime, tcpCPU, fmqCPU time.Duration
	var peak uint64
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		tcpTime += rawCopy(b, file, filepath.Join(fastDir(b), "copy"))
		c1 := cpuTime()
		h, d, p := shipOnce(b, src)
		c2 := cpuTime()
		tcpCPU += c1 - c0
		fmqCPU += c2 - c1
		hashTime += h
		sendTime += d
		peak = max(peak, p)
	}
	mb := float64(benchSize) / (1 << 20) * float64(b.N)
	tcpRate := mb / tcpTime.Seconds()
	sendRate, e2eRate := mb/sendTime.Seconds(), mb/(hashTime+sendTime).Seconds()
	b.ReportMetric(tcpRate, "tcp-MiB/s")
	b.ReportMetric(sendRate, "filemq-MiB/s")
	b.ReportMetric(sendRate/tcpRate, "ratio")
	b.ReportMetric(e2eRate/tcpRate, "ratio-with-hash")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	// CPU seconds per GiB (this process: both ends), which depends less
	// on the load of a shared machine than wall time does.
	b.ReportMetric(tcpCPU.Seconds()/float64(b.N), "tcp-cpu-s")
	b.ReportMetric(fmqCPU.Seconds()/float64(b.N), "filemq-cpu-s")
}

// rawCopy sends file over a TCP connection on loopback into dst.
// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rawCopy(b *testing.B, file, dst string) time.Duration {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustNot(b, err)
	defer ln.Close()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		f, err := os.Open(file)
		if err != nil {
			return
		}
		defer f.Close()
		io.Copy(conn, f)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	mustNot(b, err)
	out, err := os.Create(dst)
	mustNot(b, err)
	n, err := io.Copy(out, conn)
	mustNot(b, err)
	mustNot(b, out.Close())
	conn.Close()
	wg.Wait()
	if n != benchSize {
		b.Fatalf("raw copy moved %d bytes", n)
	}
	return time.Since(start)
}

// shipOnce publishes src, waits for the server to have hashed it (the
// first duration), then connects a client and waits for it to hold the
// file, verified (the second duration, which includes the client's hashing).
func shipOnce(b *testing.B, src string) (time.Duration, time.Duration, uint64) {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	cfg := DefaultServerConfig()
	cfg.StableAge = 0
	s, err := NewServer(cfg)
	mustNot(b, err)
	defer s.Close()
	c, err := NewClient(DefaultClientConfig(fastDir(b)))
	mustNot(b, err)
	defer c.Close()
	mustNot(b, c.Subscribe("/"))
	start := time.Now()
	mustNot(b, s.Publish(src, "/"))
	for {
		st, err := s.Stats()
		mustNot(b, err)
		if st.Files == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	hashed := time.Since(start)
	start = time.Now()
	mustNot(b, c.Connect(s.Endpoint()))
	for e := range c.Events() {
		if e.Type == FileUpdated {
			break
		}
		if e.Type == FileRejected {
			b.Fatalf("rejected: %v", e.Err)
		}
	}
	d := time.Since(start)
	close(stop)
	wg.Wait()
	return hashed, d, peak.Load()
}
