package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium. Under CI=true a missing browser is a
// failure, not a skip: the browser test must run there.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LOGMESH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (apt-get install chromium chromium-driver); the browser test must run under CI")
	}
	t.Skip("chromium not installed (apt-get install chromium); skipping the browser test")
	return ""
}

// artifactDir is where the test leaves its screenshot: $LOGMESH_ARTIFACTS,
// else ./testdata-out at the repository root under CI, else a temp dir.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LOGMESH_ARTIFACTS")
	if dir == "" && os.Getenv("CI") == "true" {
		dir = filepath.Join("..", "testdata-out")
	}
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// One headless chromium serves every browser test of the package (starting
// one is the slow part on a loaded machine); each test gets its own tab in
// its own browser context (fresh cookies). TestMain stops it.
var browser struct {
	once sync.Once
	ctx  context.Context
	err  error
	stop func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.stop != nil {
		browser.stop()
	}
	os.Exit(code)
}

// newBrowser returns a new tab, closed when the test ends.
func newBrowser(t *testing.T) (context.Context, *jsErrors) {
	t.Helper()
	path := chromiumPath(t)
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "logmesh-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path),
			chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-background-timer-throttling", true),
			chromedp.Flag("disable-renderer-backgrounding", true),
			chromedp.UserDataDir(dir),
			chromedp.WindowSize(1280, 1100),
		)
		ctx, cancel := chromedp.NewContext(allocCtx)
		browser.ctx = ctx
		browser.stop = func() { cancel(); cancelAlloc(); os.RemoveAll(dir) }
		browser.err = chromedp.Do(ctx) // start the browser now, without a timeout
	})
	if browser.err != nil {
		t.Fatalf("start chromium: %v", browser.err)
	}
	errs := &jsErrors{}
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(errs.listen))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // open the tab
		t.Fatalf("open a tab: %v", err)
	}
	return ctx, errs
}

// jsErrors collects the page's uncaught exceptions.
type jsErrors struct {
	mu   sync.Mutex
	list []string
}

func (j *jsErrors) listen(ev any) {
	if e, ok := ev.(*runtime.EventExceptionThrown); ok {
		j.mu.Lock()
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		j.list = append(j.list, fmt.Sprintf("%s (%s:%d:%d)", msg, d.URL, d.LineNumber+1, d.ColumnNumber+1))
		j.mu.Unlock()
	}
}

func (j *jsErrors) check(t *testing.T) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.list {
		t.Errorf("page threw: %s", e)
	}
}

// testApp logs through zerolog into the hub at a steady pace until stopped,
// like an application using the logpub writer.
func testApp(t *testing.T, hub *testHub, service string, every time.Duration) {
	t.Helper()
	log := hub.logger(t, service)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
				log.Info().Int("i", i).Msg("handled request")
				if i%5 == 0 {
					log.Debug().Int("i", i).Msg("cache miss")
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// run runs one browser action with a timeout.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(actx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// jsPoll waits (in the page) until expr is truthy.
func jsPoll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	run(t, ctx, what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
}

// infoPixels counts the pixels of the level chart's canvas that have the
// info series' colour (#2a7ae2, with some tolerance for anti-aliasing).
const infoPixels = `(() => {
  const c = document.querySelector('#chart-levels canvas');
  if (!c || !c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i+3] > 200 && Math.abs(d[i]-42) < 40 && Math.abs(d[i+1]-122) < 40 && Math.abs(d[i+2]-226) < 40) n++;
  return n;
})()`

func TestBrowserDashboard(t *testing.T) {
	ctx, jsErr := newBrowser(t)
	s, hub := startServer(t, Config{
		Peers:    meshPeers(t),
		Timers:   fixedTimers{},
		Shipping: fixedShipping{},
		Batches:  fixedBatches{},
	})
	testApp(t, hub, "api", 10*time.Millisecond)

	run(t, ctx, "open page", chromedp.Steps(chromedp.Navigate(s.URL()), chromedp.WaitVisible("#chart-levels canvas")))

	// The graph draws and its data grows while the app logs.
	jsPoll(t, ctx, "graph has samples", `window.logmesh.levelsChart.data[0].length >= 5`)
	n1 := run(t, ctx, "read graph", chromedp.Evaluate[int](`window.logmesh.levelsChart.data[0].length`))
	jsPoll(t, ctx, "graph grows", fmt.Sprintf(`window.logmesh.levelsChart.data[0].length >= %d`, n1+5))
	jsPoll(t, ctx, "info rate > 0", `Math.max(...window.logmesh.levelsChart.data[1+2]) > 10`)
	jsPoll(t, ctx, "info line drawn on the canvas", infoPixels+` > 50`)
	jsPoll(t, ctx, "node series", `window.logmesh.nodesChart.series.some(s => s.label === 'node-a')`)

	// A line logged after the page loaded shows in the tail.
	marker := fmt.Sprintf("after-load-%d", time.Now().UnixNano())
	web := hub.logger(t, "web")
	web.Warn().Msg(marker)
	jsPoll(t, ctx, "tail shows the new line", fmt.Sprintf(`document.querySelector('#tail').textContent.includes(%q)`, marker))
	jsPoll(t, ctx, "tail shows info lines", `[...document.querySelectorAll('#tail .row')].some(r => r.dataset.level === 'info')`)

	// Status tables.
	jsPoll(t, ctx, "peers table", `document.querySelector('#peers').textContent.includes('node-b')`)
	jsPoll(t, ctx, "batches table", `document.querySelector('#batches progress') !== null`)

	// The level filter hides info lines: those shown before, and new ones.
	run(t, ctx, "set level filter", chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.querySelector('#f-level'); s.value = 'warn'; s.dispatchEvent(new Event('change')); })()`))
	// The tail reconnects with the new filter; log warn+info pairs until a
	// warn line gets through, then check that no info line did.
	var seen string
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; seen == "" && time.Now().Before(deadline); i++ {
		web.Info().Msg(fmt.Sprintf("filtered-info-%d", i))
		web.Warn().Msg(fmt.Sprintf("filtered-warn-%d", i))
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := chromedp.Run(pctx, chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`document.querySelector('#tail').textContent.includes('filtered-warn-%d')`, i),
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(300*time.Millisecond)))
		cancel()
		if err != nil && !errors.Is(err, chromedp.ErrPollingTimeout) {
			t.Fatalf("look for warn: %v", err)
		}
		ok := err == nil
		if ok {
			seen = fmt.Sprintf("filtered-info-%d", i)
		}
	}
	if seen == "" {
		t.Fatal("no warn line reached the filtered tail")
	}
	visibleInfo := run(t, ctx, "count visible info rows", chromedp.Evaluate[int](
		`[...document.querySelectorAll('#tail .row')].filter(r => r.dataset.level === 'info' && r.offsetParent !== null).length`))
	if visibleInfo != 0 {
		t.Fatalf("%d info rows visible with level filter warn", visibleInfo)
	}
	if run(t, ctx, "info logged with the filter on", chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector('#tail').textContent.includes(%q)`, seen))) {
		t.Fatalf("%s reached a tail filtered at warn", seen)
	}

	shot := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	jsErr.check(t)
}

// The page reconnects by itself after logd restarts: its streams come back
// on their own and show what the new logd logs.
func TestBrowserReconnectsAfterRestart(t *testing.T) {
	ctx, jsErr := newBrowser(t)
	hub1 := newTestHub(t, "node-a")
	s1, err := New(Config{Addr: "127.0.0.1:0", Logs: hub1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := s1.Addr()
	run(t, ctx, "open page", chromedp.Navigate(s1.URL()))
	jsPoll(t, ctx, "streams live", `document.querySelector('#conn').textContent === 'live'`)

	t0 := time.Now()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed in %v", time.Since(t0))
	jsPoll(t, ctx, "page sees logd gone", `document.querySelector('#conn').textContent.startsWith('reconnecting')`)

	// logd comes back on the same address, with a fresh hub.
	hub2 := newTestHub(t, "node-a")
	s2, err := New(Config{Addr: addr, Logs: hub2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for err = s2.Start(context.Background()); err != nil; err = s2.Start(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("restart on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // retry interval while the port frees
	}
	t.Logf("restarted at %v", time.Since(t0))
	jsPoll(t, ctx, "streams live again", `document.querySelector('#conn').textContent === 'live'`)
	t.Logf("live at %v", time.Since(t0))
	// The tail is connected again once a line logged now shows up.
	web := hub2.logger(t, "web")
	for i := 0; ; i++ {
		marker := fmt.Sprintf("after-restart-%d", i)
		web.Error().Msg(marker)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := chromedp.Run(pctx, chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`document.querySelector('#tail').textContent.includes(%q)`, marker),
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(300*time.Millisecond)))
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, chromedp.ErrPollingTimeout) || time.Now().After(deadline.Add(10*time.Second)) {
			t.Fatalf("tail after restart: %v", err)
		}
	}
	jsErr.check(t)
}

// Off loopback, the printed URL (?token=) opens the page in a browser: the
// token moves into a cookie that carries the page's streams.
func TestBrowserWithToken(t *testing.T) {
	ctx, jsErr := newBrowser(t)
	s, hub := startServer(t, Config{Addr: "0.0.0.0:0"})
	_, port, _ := net.SplitHostPort(s.Addr())
	base := "http://127.0.0.1:" + port
	run(t, ctx, "open page with token", chromedp.Navigate(base+"/?token="+s.Token()))
	jsPoll(t, ctx, "streams live", `document.querySelector('#conn').textContent === 'live'`)
	if loc := run(t, ctx, "location", chromedp.Evaluate[string](`location.href`)); loc != base+"/" {
		t.Fatalf("page at %s, want the token out of the URL: %s/", loc, base)
	}
	web := hub.logger(t, "web")
	for i := 0; ; i++ {
		marker := fmt.Sprintf("with-token-%d", i)
		web.Warn().Msg(marker)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := chromedp.Run(pctx, chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`document.querySelector('#tail').textContent.includes(%q)`, marker),
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(300*time.Millisecond)))
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, chromedp.ErrPollingTimeout) || i > 30 {
			t.Fatalf("tail with token: %v", err)
		}
	}
	// Without the cookie (a fresh browser context), the page is refused.
	ctx2, _ := newBrowser(t)
	resp := run(t, ctx2, "open without token", chromedp.NavigateResponse(base+"/"))
	if resp.Status != http.StatusUnauthorized {
		t.Fatalf("page without token: %d, want 401", resp.Status)
	}
	jsErr.check(t)
}
