package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestIngestThenStreamNDJSON(t *testing.T) {
	s, hub := startServer(t, Config{})
	c := testClient(t)
	base := "http://" + s.Addr()
	r := openStream(t, c, base+"/api/v1/stream?level=warn&service=api")

	body := `{"level":"info","message":"hidden by level"}
{"level":"warn","message":"disk at 91%"}
{"level":"error","code":7,"message":"write failed"}
`
	code, res := post(t, c, base+"/api/v1/logs?service=api", body)
	if code != http.StatusOK || res.Accepted != 3 || res.Rejected != 0 {
		t.Fatalf("POST: %d %+v", code, res)
	}
	// Another service's warn line must not reach a service=api stream.
	if code, _ := post(t, c, base+"/api/v1/logs?service=db", `{"level":"warn","message":"other service"}`); code != http.StatusOK {
		t.Fatalf("POST db: %d", code)
	}
	if code, _ := post(t, c, base+"/api/v1/logs?service=api", `{"level":"fatal","message":"last"}`); code != http.StatusOK {
		t.Fatalf("POST last: %d", code)
	}
	want := []string{`{"level":"warn","message":"disk at 91%"}`, `{"level":"error","code":7,"message":"write failed"}`, `{"level":"fatal","message":"last"}`}
	for _, w := range want {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(line, "\n"); got != w {
			t.Fatalf("stream line = %s, want %s (byte-identical)", got, w)
		}
	}
	st := hub.Stats()
	if st.Levels["info"].In != 1 || st.Levels["warn"].In != 2 || st.Levels["error"].In != 1 {
		t.Fatalf("hub counts = %+v", st.Levels)
	}
}

func TestStreamSSEWithRegexAndNode(t *testing.T) {
	s, _ := startServer(t, Config{})
	c := testClient(t)
	base := "http://" + s.Addr()
	r := openStream(t, c, base+"/api/v1/stream?format=sse&node=node-a&regex=user%3D4[0-9]")
	if code, _ := post(t, c, base+"/api/v1/logs?service=web", `{"level":"info","user":"user=17"}
{"level":"debug","message":"user=42 logged in"}`); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	ev := readSSE(t, r)
	if ev.name != "log" {
		t.Fatalf("event %q, want log", ev.name)
	}
	var got sseLog
	if err := json.Unmarshal([]byte(ev.data), &got); err != nil {
		t.Fatal(err)
	}
	if got.Line != `{"level":"debug","message":"user=42 logged in"}` || got.Level != "debug" || got.Service != "web" || got.Node != "node-a" || got.Seq != 2 {
		t.Fatalf("got %+v", got)
	}
}

func TestStreamBadFilter(t *testing.T) {
	s, _ := startServer(t, Config{})
	c := testClient(t)
	for _, q := range []string{"level=loud", "regex=(", "regex=" + strings.Repeat("a", maxRegexp+1)} {
		resp, err := c.Get("http://" + s.Addr() + "/api/v1/stream?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s %s, want 400", q, resp.Status, b)
		}
	}
}

func TestIngestMalformedLines(t *testing.T) {
	s, hub := startServer(t, Config{})
	c := testClient(t)
	base := "http://" + s.Addr()
	r := openStream(t, c, base+"/api/v1/stream")

	body := "{\"level\":\"info\",\"n\":1}\n" + // 1 ok
		"{\"level\":\"info\",\"n\":\n" + // 2 truncated
		"\n" + // 3 empty: skipped
		"[1,2]\n" + // 4 not an object
		"{\"level\":\"warn\",\"n\":5}\r\n" + // 5 ok, CRLF
		"plain text\n" + // 6 not JSON
		"{\"level\":\"error\",\"n\":7}" // 7 ok, no final newline
	code, res := post(t, c, base+"/api/v1/logs", body)
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", code)
	}
	if res.Accepted != 3 || res.Rejected != 3 || len(res.Errors) != 3 ||
		res.Errors[0].Line != 2 || res.Errors[1].Line != 4 || res.Errors[2].Line != 6 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Error, "line 2") {
		t.Errorf("error %q does not name line 2", res.Error)
	}
	// Nothing accepted is lost: the three good lines arrive, in order.
	for _, n := range []string{`"n":1`, `"n":5`, `"n":7`} {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(line, n) {
			t.Fatalf("got %q, want the line with %s", line, n)
		}
	}
	if got := hub.Stats().Levels; got["info"].In != 1 || got["warn"].In != 1 || got["error"].In != 1 {
		t.Fatalf("hub counts %+v", got)
	}
	if s.linesRejected.Load() != 3 {
		t.Fatalf("rejected counter %d, want 3", s.linesRejected.Load())
	}
	// The server keeps serving.
	if code, res := post(t, c, base+"/api/v1/logs", `{"level":"info"}`); code != http.StatusOK || res.Accepted != 1 {
		t.Fatalf("after bad input: %d %+v", code, res)
	}
}

func TestIngestOversizeBody(t *testing.T) {
	s, hub := startServer(t, Config{MaxBody: 1024})
	c := testClient(t)
	url := "http://" + s.Addr() + "/api/v1/logs"
	big := strings.Repeat(`{"level":"info","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`+"\n", 40) // > 1 KiB

	// With a Content-Length, and chunked (no length known in advance).
	for name, body := range map[string]io.Reader{
		"content-length": strings.NewReader(big),
		"chunked":        io.MultiReader(strings.NewReader(big)),
	} {
		resp, err := c.Post(url, "application/x-ndjson", body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: %s, want 413", name, resp.Status)
		}
	}
	if in := hub.Stats().Levels["info"].In; in != 0 {
		t.Fatalf("an oversize body ingested %d lines, want none", in)
	}
	if s.bodiesTooLarge.Load() != 2 {
		t.Fatalf("413 counter = %d", s.bodiesTooLarge.Load())
	}
	if code, _ := post(t, c, url, `{"level":"info"}`); code != http.StatusOK {
		t.Fatalf("small body after 413: %d", code)
	}
}

func TestIngestBadService(t *testing.T) {
	s, _ := startServer(t, Config{})
	c := testClient(t)
	code, res := post(t, c, "http://"+s.Addr()+"/api/v1/logs?service=a%20b", `{"level":"info"}`)
	if code != http.StatusBadRequest || res.Accepted != 0 {
		t.Fatalf("%d %+v", code, res)
	}
}

func TestIngestSourceClosed(t *testing.T) {
	s, hub := startServer(t, Config{})
	c := testClient(t)
	hub.close()
	code, res := post(t, c, "http://"+s.Addr()+"/api/v1/logs", "{\"level\":\"info\"}\n{\"level\":\"info\"}")
	if code != http.StatusServiceUnavailable || res.Accepted != 0 || !strings.Contains(res.Error, "line 1") {
		t.Fatalf("%d %+v", code, res)
	}
}

// A client that does not read loses events (counted); the hub never waits.
func TestSlowClientDropsNeverBlocks(t *testing.T) {
	s, hub := startServer(t, Config{ClientBuffer: 8})
	c := testClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr()+"/api/v1/stream", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // never read: the socket buffers fill, then the queue
	line := []byte(`{"level":"info","message":"` + strings.Repeat("x", 1000) + `"}`)
	start := time.Now()
	for i := 0; i < 16000; i++ { // 16 MB: more than the socket buffers hold
		if err := hub.Ingest("api", line); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("ingest took %v with a stalled client", d)
	}
	// The loss is counted: in the client's queue, or (if the forwarding
	// goroutine fell behind under load) in the hub's subscription queue.
	if s.clientDropped.Load() == 0 && hub.Stats().Dropped == 0 {
		t.Fatal("a stalled client lost no events: its queue is not bounded")
	}
}

func TestDeliverBoundedQueue(t *testing.T) {
	s := &Server{}
	c := &streamClient{ch: make(chan Event, 2), s: s}
	line := []byte(`{"level":"info"}`)
	for i := 0; i < 5; i++ {
		c.deliver(&Event{Line: line})
	}
	line[2] = 'X' // the queue holds copies, not the source's buffer
	if len(c.ch) != 2 || c.dropped.Load() != 3 || s.clientDropped.Load() != 3 {
		t.Fatalf("queued %d dropped %d/%d", len(c.ch), c.dropped.Load(), s.clientDropped.Load())
	}
	if e := <-c.ch; string(e.Line) != `{"level":"info"}` {
		t.Fatalf("queued line changed with the source buffer: %s", e.Line)
	}
}

func TestMaxClients(t *testing.T) {
	s, _ := startServer(t, Config{MaxClients: 2})
	c := testClient(t)
	openStream(t, c, "http://"+s.Addr()+"/api/v1/stream")
	openStream(t, c, "http://"+s.Addr()+"/api/v1/graph")
	resp, err := c.Get("http://" + s.Addr() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || s.clientsRefused.Load() != 1 {
		t.Fatalf("third stream with MaxClients 2: %s, refused %d", resp.Status, s.clientsRefused.Load())
	}
	if s.clients.Load() != 2 {
		t.Fatalf("clients = %d after a refusal, want 2", s.clients.Load())
	}
}
