package filemq

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
)

// BenchmarkShipCurveVsPlain ships one 1 GiB file over loopback twice per
// iteration, in the same process: with an open server and client (NULL),
// then with both closed with CURVE (keyed). Each time is from Connect to
// the verified file in the inbox (on tmpfs when there is one), the server
// having hashed the file first. It reports both rates, curve/plain, and
// the CPU seconds of each (both ends), steadier than wall time on a shared
// machine.
func BenchmarkShipCurveVsPlain(b *testing.B) {
	src := fastDir(b)
	writeRandom(b, filepath.Join(src, "big.bin"), benchSize, 1)
	srvKeys, err := curve.GenerateKeyPair()
	mustNot(b, err)
	cliKeys, err := curve.GenerateKeyPair()
	mustNot(b, err)
	var plainT, curveT, plainCPU, curveCPU time.Duration
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		plainT += shipTimed(b, src, nil, nil)
		c1 := cpuTime()
		curveT += shipTimed(b, src, &srvKeys, &cliKeys)
		c2 := cpuTime()
		plainCPU += c1 - c0
		curveCPU += c2 - c1
	}
	mb := float64(benchSize) / (1 << 20) * float64(b.N)
	plainRate, curveRate := mb/plainT.Seconds(), mb/curveT.Seconds()
	b.ReportMetric(plainRate, "plain-MiB/s")
	b.ReportMetric(curveRate, "curve-MiB/s")
	b.ReportMetric(curveRate/plainRate, "ratio")
	b.ReportMetric(plainCPU.Seconds()/float64(b.N), "plain-cpu-s")
	b.ReportMetric(curveCPU.Seconds()/float64(b.N), "curve-cpu-s")
	b.ReportMetric(curveCPU.Seconds()/plainCPU.Seconds(), "cpu-ratio")
}

// shipTimed publishes src (waiting for its hash, untimed), then times a
// client from Connect to the verified file in a fresh inbox; with srv and
// cli set, both ends speak CURVE.
func shipTimed(b *testing.B, src string, srv, cli *curve.KeyPair) time.Duration {
	cfg := DefaultServerConfig()
	cfg.StableAge = 0
	if srv != nil {
		cfg.Keys, cfg.Authorize = srv, curve.NewAllowList(cli.Public).Authorize
	}
	s, err := NewServer(cfg)
	mustNot(b, err)
	defer s.Close()
	inbox := fastDir(b)
	defer os.RemoveAll(inbox)
	ccfg := DefaultClientConfig(inbox)
	if cli != nil {
		ccfg.Keys, ccfg.ServerKey = cli, srv.Public
	}
	c, err := NewClient(ccfg)
	mustNot(b, err)
	defer c.Close()
	mustNot(b, c.Subscribe("/"))
	mustNot(b, s.Publish(src, "/"))
	for {
		st, err := s.Stats()
		mustNot(b, err)
		if st.Files == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	start := time.Now()
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
	if st := c.Stats(); st.Refused != 0 || st.ReceivedBytes < benchSize {
		b.Fatalf("client stats %+v", st)
	}
	return d
}
