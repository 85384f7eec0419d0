package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/dashboard"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
)

// freeTCPAddr returns a loopback address with a port free a moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startLogdHTTP runs `logd run` with its dashboard on httpAddr and an ipc
// writer endpoint in its data dir.
func startLogdHTTP(t *testing.T, bin, httpAddr string, extra ...string) (*logdProc, string) {
	t.Helper()
	return startLogdNamed(t, bin, "logd-web", meshtest.Config(t).BeaconPort, httpAddr, extra...)
}

// startLogdNamed is startLogdHTTP with a name and a beacon port (the mesh).
func startLogdNamed(t *testing.T, bin, name string, beaconPort int, httpAddr string, extra ...string) (*logdProc, string) {
	t.Helper()
	dataDir := t.TempDir()
	writerEP := "ipc://" + filepath.Join(dataDir, "w.sock")
	p := runLogd(t, bin, dataDir, name, beaconPort, append([]string{"--writer-endpoint", writerEP, "--http", httpAddr}, extra...)...)
	return p, writerEP
}

// waitHTTP polls url until it answers want.
func waitHTTP(t *testing.T, p *logdProc, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v (want %d)\n%s", url, err, want, p.stderr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// The dashboard of a real logd: lines from a zerolog writer and from the
// HTTP bridge go the same way, come out of the stream endpoint with the
// level and service filter applied, and count on /metrics.
func TestLogdDashboardBridge(t *testing.T) {
	bin := buildLogd(t)
	addr := freeTCPAddr(t)
	p, writerEP := startLogdHTTP(t, bin, addr)
	base := "http://" + addr
	waitHTTP(t, p, base+"/api/v1/peers", http.StatusOK)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream?level=warn&service=api", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)

	// Wait until the hub has the stream's subscription: lines logged before
	// it would not be live events for it.
	waitMetric(t, p, base, `logmesh_dashboard_clients 1`)

	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	log := zerolog.New(w)
	log.Info().Msg("writer info, filtered out")
	log.Warn().Msg("from the writer")
	if err := w.Close(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	post, err := http.Post(base+"/api/v1/logs?service=api", "application/x-ndjson",
		strings.NewReader("{\"level\":\"info\",\"message\":\"bridge info, filtered out\"}\n{\"level\":\"error\",\"message\":\"from the bridge\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, post.Body)
	post.Body.Close()
	if post.StatusCode != http.StatusOK {
		t.Fatalf("POST: %s\n%s", post.Status, p.stderr)
	}
	for _, want := range []string{`{"level":"warn","message":"from the writer"}`, `{"level":"error","message":"from the bridge"}`} {
		line, err := stream.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v\n%s", err, p.stderr)
		}
		if strings.TrimSuffix(line, "\n") != want {
			t.Fatalf("stream line %q, want %q", line, want)
		}
	}
	waitMetric(t, p, base, `logmesh_events_in_total{level="info"} 2`)
	waitTimerTicks(t, p, base)
	waitMetric(t, p, base, `logmesh_events_in_total{level="error"} 1`)

	// The bridge's lines are the hub's like any other: a logpub subscriber
	// (what logtail uses) reads them back from the published history.
	r, err := peersJSON(t, bin, p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Self.Headers["X-HTTP"] != addr {
		t.Fatalf("X-HTTP header = %q, want %s", r.Self.Headers["X-HTTP"], addr)
	}
	pub := r.Self.Headers["X-LOGD-PUB"]
	sub, err := logpub.Subscribe(ctx, "tcp://127.0.0.1:"+strings.TrimPrefix(pub, "tcp://*:"),
		logpub.SubscribeOptions{Since: time.Now().Add(-time.Hour), Filter: logpub.Filter{MinLevel: zerolog.ErrorLevel}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := sub.Next()
	sub.Close()
	if err != nil || !strings.Contains(string(e.Line), "from the bridge") || e.Service != "api" {
		t.Fatalf("history: %+v %v", e, err)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("logd exit: %v\n%s", err, p.stderr)
	}
}

func waitMetric(t *testing.T, p *logdProc, base, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var body []byte
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want+"\n") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q: %v\n%s\n%s", want, err, body, p.stderr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// ansi matches the colour codes of zerolog's console writer.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// Bound off loopback, logd generates a token, prints it, and refuses
// requests without it.
func TestLogdDashboardTokenOffLoopback(t *testing.T) {
	bin := buildLogd(t)
	_, port, _ := net.SplitHostPort(freeTCPAddr(t))
	p, _ := startLogdHTTP(t, bin, "0.0.0.0:"+port)
	base := "http://127.0.0.1:" + port
	waitHTTP(t, p, base+"/api/v1/peers", http.StatusUnauthorized)
	out := ansi.ReplaceAllString(p.stderr.String(), "")
	i := strings.Index(out, "dashboard started")
	if i >= 0 {
		if j := strings.Index(out[i:], "token="); j >= 0 {
			i += j
		} else {
			i = -1
		}
	}
	if i < 0 {
		t.Fatalf("no token printed:\n%s", out)
	}
	token := strings.Fields(out[i+len("token="):])[0]
	req, _ := http.NewRequest("GET", base+"/api/v1/peers", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the printed token: %s", resp.Status)
	}
}

// waitTimerTicks waits until the dashboard's timers show the timer
// service's 100 ms ticks being sent: the dashboard paces its graphs with
// them, and it is the only tick client of this logd.
func waitTimerTicks(t *testing.T, p *logdProc, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st dashboard.TimerStatus
		resp, err := http.Get(base + "/api/v1/timers")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		for _, sc := range st.Schedules {
			if sc.Kind == "tick" && sc.Spec == "100ms" && sc.Fired > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 100ms ticks sent by the timer service: %+v %v\n%s", st, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// With --http-cluster, a logd's dashboard shows the events of its peers:
// an app logging into logd-b appears in logd-a's stream and per-node graph.
func TestLogdDashboardCluster(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	addr := freeTCPAddr(t)
	a, _ := startLogdNamed(t, bin, "logd-a", port, addr, "--http-cluster")
	b, writerB := startLogdNamed(t, bin, "logd-b", port, "")
	base := "http://" + addr
	waitHTTP(t, a, base+"/api/v1/peers", http.StatusOK)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream?node=logd-b&service=db", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)

	// logd-a follows logd-b once it has seen its X-LOGD-PUB; log until a
	// line gets through (lines before that are not live events for it).
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerB, Service: "db"})
	defer w.Close()
	log := zerolog.New(w)
	got := make(chan string, 1)
	go func() {
		line, _ := stream.ReadString('\n')
		got <- line
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case line := <-got:
			if !strings.Contains(line, `"message":"from b"`) {
				t.Fatalf("logd-a streamed %q", line)
			}
			waitMetricPrefix(t, a, base, `logmesh_node_events_total{node="logd-b"} `)
			return
		case <-tick.C:
			log.Warn().Int("i", i).Msg("from b")
		case <-ctx.Done():
			t.Fatalf("no event of logd-b reached logd-a's dashboard\na:\n%s\nb:\n%s", a.stderr, b.stderr)
		}
	}
}

// waitMetricPrefix waits until /metrics has a line starting with prefix.
func waitMetricPrefix(t *testing.T, p *logdProc, base, prefix string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains("\n"+string(body), "\n"+prefix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q\n%s", prefix, p.stderr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
