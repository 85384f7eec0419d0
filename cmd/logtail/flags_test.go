package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// twoHubs runs two hub processes, each with the events of every level (and
// one without a level) of service api, and returns their endpoints and
// node UUIDs.
func twoHubs(t *testing.T) (pubs []string, nodes []string) {
	t.Helper()
	prev := zerolog.GlobalLevel()
	zerolog.SetGlobalLevel(zerolog.TraceLevel) // zerolog drops trace by default
	defer zerolog.SetGlobalLevel(prev)
	for k := 0; k < 2; k++ {
		writerEP, pub := startHub(t, t.TempDir())
		w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
		log := zerolog.New(w).With().Timestamp().Int("hub", k).Logger()
		for _, l := range []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel,
			zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel} {
			log.WithLevel(l).Msg("lvl-" + l.String())
		}
		log.Log().Msg("lvl-none")
		if err := w.Close(); err != nil || w.Stats().Acked != 8 {
			t.Fatalf("writer: %v %+v", err, w.Stats())
		}
		st, err := logpub.Subscribe(context.Background(), pub, logpub.SubscribeOptions{Since: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		e, err := st.Next()
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		pubs, nodes = append(pubs, pub), append(nodes, e.Node.String())
	}
	return pubs, nodes
}

// levelsOf returns "hub:level" for each JSON line of out, sorted.
func levelsOf(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		i, j := strings.Index(l, `"hub":`), strings.Index(l, `"lvl-`)
		if i < 0 || j < 0 {
			t.Fatalf("unexpected line %q", l)
		}
		got = append(got, l[i+6:i+7]+":"+strings.TrimSuffix(l[j+5:], `"}`))
	}
	slices.Sort(got)
	return got
}

func expectLevels(hubs []int, levels ...string) []string {
	var out []string
	for _, h := range hubs {
		for _, l := range levels {
			out = append(out, strconv.Itoa(h)+":"+l)
		}
	}
	slices.Sort(out)
	return out
}

// TestLogtailFlagEdgeCases runs logtail against two logds for the flags'
// edge cases: every --level exactly, --count across nodes (history and
// follow), --grep with --exclude, --json against pretty, --node by UUID in
// any spelling and by the prefix logtail prints.
func TestLogtailFlagEdgeCases(t *testing.T) {
	pubs, nodes := twoHubs(t)
	connect := strings.Join(pubs, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// logtail runs in this process (run, as main calls it): the many
	// runs stay fast; other tests run it as a process.
	logtail := func(args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if code := run(ctx, append([]string{"--since", "1h", "--connect", connect}, args...), &out, &errOut, func(string) string { return "" }); code != 0 {
			t.Fatalf("logtail %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	all := []string{"trace", "debug", "info", "warn", "error", "fatal", "panic"}
	both := []int{0, 1}
	for i, l := range all {
		if got, want := levelsOf(t, logtail("--json", "--level", l)), expectLevels(both, all[i:]...); !slices.Equal(got, want) {
			t.Errorf("--level %s: got %v, want %v", l, got, want)
		}
	}
	if got, want := levelsOf(t, logtail("--json")), expectLevels(both, append(slices.Clone(all), "none")...); !slices.Equal(got, want) {
		t.Errorf("no --level: got %v, want %v", got, want)
	}

	// --count across nodes: exactly that many, from history and live.
	if n := len(levelsOf(t, logtail("--json", "--count", "5"))); n != 5 {
		t.Errorf("--count 5: %d lines", n)
	}
	if n := len(levelsOf(t, logtail("--json", "--count", "11", "-f"))); n != 11 {
		t.Errorf("--count 11 -f: %d lines", n)
	}

	// --grep and --exclude together: both apply, to the JSON line.
	got := levelsOf(t, logtail("--json", "--grep", `"lvl-(warn|error|none)"`, "--exclude", `"hub":1`))
	if want := expectLevels([]int{0}, "warn", "error", "none"); !slices.Equal(got, want) {
		t.Errorf("--grep with --exclude: got %v, want %v", got, want)
	}

	// Pretty shows the same events as --json, one line each, labelled.
	pretty := strings.Split(strings.TrimSpace(logtail("--no-color", "--level", "info")), "\n")
	if len(pretty) != 10 {
		t.Errorf("pretty --level info: %d lines, want 10:\n%s", len(pretty), strings.Join(pretty, "\n"))
	}
	for _, l := range pretty {
		if strings.Contains(l, `{"`) || !strings.Contains(l, "/api ") || !strings.Contains(l, "lvl-") {
			t.Errorf("pretty line %q", l)
		}
	}

	// --node by UUID (as is, in capitals, without dashes) or by the 8
	// digits the pretty output prints: only that node.
	for _, n := range []string{strings.ToUpper(nodes[1]), nodes[1][:8]} { // more spellings: logpub's TestFilterLevelsAndNodes
		if got, want := levelsOf(t, logtail("--json", "--node", n, "--level", "error")), expectLevels([]int{1}, "error", "fatal", "panic"); !slices.Equal(got, want) {
			t.Errorf("--node %s: got %v, want %v", n, got, want)
		}
	}
	if !strings.Contains(logtail("--no-color", "--node", nodes[0][:8], "--level", "panic"), nodes[0][:8]+"/api ") {
		t.Error("pretty output does not label events with the node prefix --node accepts")
	}
}
