package dashboard

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func doReq(t *testing.T, c *http.Client, method, url, token string, body io.Reader) (int, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp
}

// loopbackURL turns a wildcard listen address into a URL reachable here.
func loopbackURL(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return "http://127.0.0.1:" + port
}

func TestTokenRequiredOffLoopback(t *testing.T) {
	s, hub := startServer(t, Config{Addr: "0.0.0.0:0"})
	if s.Token() == "" || len(s.Token()) < 32 {
		t.Fatalf("generated token %q: want a long random token", s.Token())
	}
	c := testClient(t)
	base := loopbackURL(t, s.Addr())

	for _, path := range []string{"/", "/api/v1/peers", "/metrics", "/api/v1/stream", "/static/app.js"} {
		if code, resp := doReq(t, c, "GET", base+path, "", nil); code != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without token: %d, want 401 with WWW-Authenticate", path, code)
		}
		if code, _ := doReq(t, c, "GET", base+path, "wrong", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
	}
	if code, _ := doReq(t, c, "POST", base+"/api/v1/logs", "", strings.NewReader(`{"level":"info"}`)); code != http.StatusUnauthorized {
		t.Fatalf("POST without token: %d, want 401", code)
	}
	if in := hub.Stats().Levels["info"].In; in != 0 {
		t.Fatalf("an unauthorized POST ingested %d lines", in)
	}
	if code, _ := doReq(t, c, "POST", base+"/api/v1/logs", s.Token(), strings.NewReader(`{"level":"info"}`)); code != http.StatusOK {
		t.Fatalf("POST with token: %d", code)
	}
	if code, _ := doReq(t, c, "GET", base+"/api/v1/peers", s.Token(), nil); code != http.StatusOK {
		t.Fatalf("GET with token: %d", code)
	}
	if got := s.unauthorized.Load(); got != 11 {
		t.Fatalf("401 counter = %d, want 11", got)
	}
}

// Opening the printed URL (?token=) sets a cookie, which then carries the
// page's own requests (EventSource cannot send an Authorization header).
func TestTokenCookieForThePage(t *testing.T) {
	s, _ := startServer(t, Config{Addr: "0.0.0.0:0"})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	base := loopbackURL(t, s.Addr())

	code, resp := doReq(t, c, "GET", base+"/?token=nope", "", nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("wrong ?token=: %d", code)
	}
	code, resp = doReq(t, c, "GET", base+"/?token="+s.Token(), "", nil)
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("?token=: %d to %q, want 303 to /", code, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == tokenCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.Value != s.Token() {
		t.Fatalf("cookie = %+v", cookie)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/status", nil)
	req.AddCookie(cookie)
	req.Header.Set("Accept", "text/event-stream")
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status stream with cookie: %s", r.Status)
	}
	// The token is never accepted from the query string elsewhere.
	if code, _ := doReq(t, c, "GET", base+"/api/v1/peers?token="+s.Token(), "", nil); code != http.StatusUnauthorized {
		t.Fatalf("?token= on the API: %d, want 401", code)
	}
}

func TestLoopbackNeedsNoToken(t *testing.T) {
	s, _ := startServer(t, Config{Addr: "127.0.0.1:0"})
	if s.Token() != "" {
		t.Fatalf("loopback bind generated a token")
	}
	c := testClient(t)
	if code, _ := doReq(t, c, "GET", "http://"+s.Addr()+"/", "", nil); code != http.StatusOK {
		t.Fatalf("GET / on loopback: %d", code)
	}
}

func TestConfiguredTokenAlwaysRequired(t *testing.T) {
	s, _ := startServer(t, Config{Addr: "127.0.0.1:0", Token: "s3cret-s3cret"})
	c := testClient(t)
	if code, _ := doReq(t, c, "GET", "http://"+s.Addr()+"/metrics", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := doReq(t, c, "GET", "http://"+s.Addr()+"/metrics", "s3cret-s3cret", nil); code != http.StatusOK {
		t.Fatalf("token: %d", code)
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true, "[::1]:7070": true, "localhost:7070": true, "127.1.2.3:0": true,
		"0.0.0.0:7070": false, ":7070": false, "[::]:7070": false, "10.1.2.3:7070": false, "example.com:7070": false,
	} {
		got, err := isLoopbackAddr(addr)
		if err != nil || got != want {
			t.Errorf("isLoopbackAddr(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	if _, err := isLoopbackAddr("no-port"); err == nil {
		t.Error("isLoopbackAddr without port: no error")
	}
}

// A tokenless dashboard refuses foreign Host names (DNS rebinding) and
// cross-origin writes (a web page posting to 127.0.0.1).
func TestForeignHostAndOriginRefused(t *testing.T) {
	s, hub := startServer(t, Config{})
	c := testClient(t)
	url := "http://" + s.Addr()
	code := func(req *http.Request) int {
		t.Helper()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	req, _ := http.NewRequest("GET", url+"/api/v1/peers", nil)
	req.Host = "evil.example:7070"
	if got := code(req); got != http.StatusForbidden {
		t.Fatalf("foreign Host: %d, want 403", got)
	}
	req, _ = http.NewRequest("POST", url+"/api/v1/logs", strings.NewReader(`{"level":"info"}`))
	req.Header.Set("Origin", "http://evil.example")
	if got := code(req); got != http.StatusForbidden {
		t.Fatalf("cross-origin POST: %d, want 403", got)
	}
	if hub.Stats().Levels["info"].In != 0 {
		t.Fatal("a cross-origin POST was ingested")
	}
	req, _ = http.NewRequest("POST", url+"/api/v1/logs", strings.NewReader(`{"level":"info"}`))
	req.Header.Set("Origin", url) // the page itself
	if got := code(req); got != http.StatusOK {
		t.Fatalf("same-origin POST: %d", got)
	}
	req, _ = http.NewRequest("GET", url+"/api/v1/peers", nil)
	req.Host = "localhost:7070"
	if got := code(req); got != http.StatusOK {
		t.Fatalf("Host localhost: %d", got)
	}
	if s.forbidden.Load() != 2 {
		t.Fatalf("403 counter = %d", s.forbidden.Load())
	}
}
