package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// The test binary plays three roles for the multi-process tests, chosen by
// LOGTAIL_TEST_ROLE: a hub (as logd runs it), an app logging through a
// logpub.Writer, and logtail itself.
func TestMain(m *testing.M) {
	switch os.Getenv("LOGTAIL_TEST_ROLE") {
	case "hub":
		os.Exit(helperHub())
	case "app":
		os.Exit(helperApp())
	case "logtail":
		os.Exit(runMain(os.Args[3:]))
	}
	// lumberjack v2.2.1 starts one mill goroutine per Logger on its first
	// rotation and never stops it (Logger.Close does not); it is idle. The
	// tests' in-process hubs capture through lumberjack.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

func helperHub() int {
	cfg := logpub.DefaultHubConfig()
	cfg.WriterEndpoint = os.Getenv("LT_WRITER")
	cfg.Capture.Dir = os.Getenv("LT_CAPTURE")
	if ep := os.Getenv("LT_PUB"); ep != "" {
		cfg.PubEndpoint = ep
	}
	if q, _ := strconv.Atoi(os.Getenv("LT_SUBQ")); q > 0 {
		cfg.SubQueueEvents = q
	}
	h, err := logpub.NewHub(cfg)
	if err == nil {
		err = h.Start(context.Background())
	}
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Printf("PUB %s\n", h.PubEndpoint())
	io.Copy(io.Discard, os.Stdin)
	h.Close()
	return 0
}

// helperApp logs LT_N events per service (api and db) at cycling levels and
// keeps zerolog's own output in LT_OUT.<service> for comparison.
func helperApp() int {
	n, _ := strconv.Atoi(os.Getenv("LT_N"))
	id := os.Getenv("LT_APP")
	levels := []zerolog.Level{zerolog.InfoLevel, zerolog.WarnLevel, zerolog.DebugLevel, zerolog.ErrorLevel}
	for _, svc := range []string{"api", "db"} {
		w := logpub.NewWriter(logpub.WriterOptions{Endpoint: os.Getenv("LT_WRITER"), Service: svc})
		var want bytes.Buffer
		log := zerolog.New(zerolog.MultiLevelWriter(w, &want)).With().Timestamp().Str("app", id).Logger()
		for i := 0; i < n; i++ {
			log.WithLevel(levels[i%len(levels)]).Int("i", i).Str("svc", svc).Msg("event \"quoted\" ünïcode")
		}
		if err := w.Close(); err != nil || w.Stats().Dropped != 0 {
			fmt.Fprintf(os.Stderr, "app: close %v, stats %+v\n", err, w.Stats())
			return 1
		}
		os.WriteFile(os.Getenv("LT_OUT")+"."+svc, want.Bytes(), 0o644)
	}
	return 0
}

func helper(t *testing.T, role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "LOGTAIL_TEST_ROLE="+role), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// startHub runs a hub process and returns its publish endpoint.
func startHub(t *testing.T, dir string, env ...string) (writerEP, pubEP string) {
	t.Helper()
	writerEP, pubEP, _ = startHubStoppable(t, dir, env...)
	return writerEP, pubEP
}

// startHubStoppable is startHub that also returns a function stopping the
// hub process gracefully.
func startHubStoppable(t *testing.T, dir string, env ...string) (writerEP, pubEP string, stop func()) {
	t.Helper()
	writerEP = "ipc://" + filepath.Join(dir, "w.sock")
	cmd := helper(t, "hub", append(env, "LT_WRITER="+writerEP, "LT_CAPTURE="+filepath.Join(dir, "cap"))...)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PUB ") {
		t.Fatalf("hub: %q %v", line, err)
	}
	pubEP = strings.TrimSpace(line[4:])
	hubProcs.Store(pubEP, cmd.Process)
	return writerEP, pubEP, stop
}

// hubProcs maps the publish endpoint of each hub process to its process.
var hubProcs sync.Map

// logtail runs logtail as a process and returns its stdout, stderr and
// exit code.
func logtail(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "LOGTAIL_TEST_ROLE=logtail")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestThreeHubsThreeAppsLevelAndServiceFilter(t *testing.T) {
	const perApp = 400
	var pubs, writers []string
	for i := 0; i < 3; i++ {
		w, p := startHub(t, t.TempDir())
		writers, pubs = append(writers, w), append(pubs, p)
	}
	connect := strings.Join(pubs, ",")
	// warn and error of api: half of each app's api events.
	want := 3 * perApp / 2

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		out, errOut string
		code        int
	}
	live := make(chan result, 1)
	go func() {
		o, e, c := logtail(t, ctx, "-f", "--since", "1h", "--connect", connect, "--level", "warn", "--service", "api", "--json", "--count", strconv.Itoa(want))
		live <- result{o, e, c}
	}()

	outDir := t.TempDir()
	var apps []*exec.Cmd
	for i := 0; i < 3; i++ {
		cmd := helper(t, "app", "LT_WRITER="+writers[i], "LT_N="+strconv.Itoa(perApp), "LT_APP="+strconv.Itoa(i), "LT_OUT="+filepath.Join(outDir, strconv.Itoa(i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, cmd)
	}
	for i, a := range apps {
		if err := a.Wait(); err != nil {
			t.Fatalf("app %d: %v", i, err)
		}
	}
	// Expected: per app, its api lines at warn and above, in order.
	expected := map[string][]string{}
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(filepath.Join(outDir, strconv.Itoa(i)) + ".api")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
				expected[strconv.Itoa(i)] = append(expected[strconv.Itoa(i)], l)
			}
		}
	}
	check := func(what, out string) {
		t.Helper()
		got := map[string][]string{}
		n := 0
		for _, l := range strings.SplitAfter(out, "\n") {
			if l == "" {
				continue
			}
			k := strings.Index(l, `"app":"`)
			if k < 0 {
				t.Fatalf("%s: unexpected line %q", what, l)
			}
			app := l[k+7 : k+8]
			got[app] = append(got[app], l)
			n++
		}
		if n != want {
			t.Fatalf("%s: %d lines, want %d", what, n, want)
		}
		for app, lines := range expected {
			if strings.Join(got[app], "") != strings.Join(lines, "") {
				t.Fatalf("%s: app %s: lines differ from zerolog's output or order (%d vs %d)", what, app, len(got[app]), len(lines))
			}
		}
	}
	r := <-live
	if r.code != 0 {
		t.Fatalf("logtail -f exit %d: %s", r.code, r.errOut)
	}
	check("follow", r.out)

	// History only: exactly the same, and nothing else.
	out, errOut, code := logtail(t, ctx, "--since", "1h", "--connect", connect, "--level", "warn", "--service", "api", "--json")
	if code != 0 {
		t.Fatalf("logtail --since exit %d: %s", code, errOut)
	}
	check("since", out)

	// Pretty output: one line per event, with the service and message.
	out, _, code = logtail(t, ctx, "--since", "1h", "--connect", pubs[0], "--service", "db", "--level", "error", "--grep", `"i":(3|7)\b`, "--exclude", `"i":7\b`, "--no-color")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 1 || !strings.Contains(lines[0], "/db ") || !strings.Contains(lines[0], "ERR") || !strings.Contains(lines[0], "i=3") {
		t.Fatalf("pretty output (exit %d):\n%s", code, out)
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, errOut, code := logtail(t, ctx, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, f := range []string{"-follow", "-since", "-level", "-service", "-node", "-grep", "-exclude", "-json", "-no-color", "-count", "-join", "-connect", "-history-wait", "received the", "stream ends", "LOGTAIL_", "Exit status"} {
		if !strings.Contains(errOut, f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
	if _, _, code := logtail(t, ctx, "--level", "loud", "--connect", "tcp://127.0.0.1:1"); code != 2 {
		t.Errorf("bad level: exit %d, want 2", code)
	}
	if _, _, code := logtail(t, ctx, "--history-wait", "0s", "--connect", "tcp://127.0.0.1:1"); code != 2 {
		t.Errorf("--history-wait 0: exit %d, want 2", code)
	}
	if _, _, code := logtail(t, ctx, "--bogus"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if _, _, code := logtail(t, ctx, "--grep", "(", "--connect", "tcp://127.0.0.1:1"); code != 2 {
		t.Errorf("bad regexp: exit %d, want 2", code)
	}
	dead := "ipc://" + filepath.Join(t.TempDir(), "nobody.sock")
	if _, errOut, code := logtail(t, ctx, "--connect", dead); code != 1 || !strings.Contains(errOut, "nobody.sock") {
		t.Errorf("unreachable logd: exit %d, want 1 (%s)", code, errOut)
	}
}

func TestFlagsFromEnv(t *testing.T) {
	env := map[string]string{"LOGTAIL_LEVEL": "error", "LOGTAIL_SERVICE": "api,db", "LOGTAIL_FOLLOW": "true", "LOGTAIL_COUNT": "3"}
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"--count", "5"}, &stderr, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err, stderr.String())
	}
	svcs := append([]string(nil), o.services...)
	sort.Strings(svcs)
	if !o.filter.LevelSet || o.filter.MinLevel != zerolog.ErrorLevel || strings.Join(svcs, ",") != "api,db" || !o.follow || o.count != 5 || o.since != 0 {
		t.Fatalf("options %+v", o)
	}
	if _, err := parseFlags(nil, &stderr, func(k string) string {
		if k == "LOGTAIL_COUNT" {
			return "many"
		}
		return ""
	}); err == nil {
		t.Fatal("bad LOGTAIL_COUNT accepted")
	}
}
