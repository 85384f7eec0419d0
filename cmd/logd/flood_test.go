package main

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
)

// A host that opens connections to a real logd's publish endpoint and
// says nothing on them: past logpub.DefaultMaxPendingPerSource the new
// ones are closed at once, counted on /metrics and logged, and logd serves
// that host again once it stops.
func TestLogdShedsConnectionFlood(t *testing.T) {
	bin := buildLogd(t)
	addr := freeTCPAddr(t)
	p, _ := startLogdHTTP(t, bin, addr)
	base := "http://" + addr
	waitHTTP(t, p, base+"/api/v1/peers", 200)
	r, err := peersJSON(t, bin, p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	pub := "127.0.0.1:" + strings.TrimPrefix(r.Self.Headers["X-LOGD-PUB"], "tcp://*:")

	const over = 6
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := 0; i < logpub.DefaultMaxPendingPerSource+over; i++ {
		c, err := net.Dial("tcp", pub)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	waitMetric(t, p, base, `logmesh_log_connections_shed_total{limit="pending"} 6`)
	if !strings.Contains(p.stderr.String(), "closing connection: its source already has as many connections waiting") {
		t.Fatalf("logd did not log the shed connections:\n%s", p.stderr)
	}
	for _, c := range flood {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := logpub.Subscribe(ctx, "tcp://"+pub, logpub.SubscribeOptions{Follow: true})
		cancel()
		if err == nil {
			st.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logd did not serve the host again after its flood: %v\n%s", err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("logd exit: %v\n%s", err, p.stderr)
	}
}
