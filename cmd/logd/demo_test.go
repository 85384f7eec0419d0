package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
)

// TestDemoAppsLogIntoLogd runs `logd --demo` and subscribes to its stream:
// the three demo services arrive, stamped with their service names.
func TestDemoAppsLogIntoLogd(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	dir := t.TempDir()
	p := startLogd(t, bin, port, "logd-demo", "--demo", "--writer-endpoint", "ipc://"+filepath.Join(dir, "w.sock"))

	var pub string
	pollUntil(t, 20*time.Second, "X-LOGD-PUB header", func() bool {
		r, err := peersJSON(t, bin, p.dataDir)
		pub = r.Self.Headers["X-LOGD-PUB"]
		return err == nil && pub != ""
	}, p.stderr.String)
	pub = strings.Replace(pub, "*", "127.0.0.1", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := logpub.Subscribe(ctx, pub, logpub.SubscribeOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]int{}
	for len(seen) < len(demoApps) {
		e, err := st.Next()
		if err != nil {
			t.Fatalf("after %v: %v\n%s", seen, err, p.stderr)
		}
		if !strings.Contains(string(e.Line), `"app":"`+e.Service+`"`) {
			t.Fatalf("event of service %q does not come from that demo app: %s", e.Service, e.Line)
		}
		seen[e.Service]++
	}
	for _, app := range demoApps {
		if seen[app.service] == 0 {
			t.Errorf("no event from demo app %s (seen %v)", app.service, seen)
		}
	}
}

func TestStartOrder(t *testing.T) {
	cs := []component{{name: "dash", needs: []string{"hub", "timer"}}, {name: "timer"}, {name: "hub"}, {name: "demo", needs: []string{"hub"}}}
	got, err := startOrder(cs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got {
		names = append(names, c.name)
	}
	if want := "hub timer dash demo"; strings.Join(names, " ") != want {
		t.Fatalf("order = %v, want %s", names, want)
	}
	if _, err := startOrder([]component{{name: "a", needs: []string{"b"}}, {name: "b", needs: []string{"a"}}}); err == nil {
		t.Fatal("a cycle was accepted")
	}
	if _, err := startOrder([]component{{name: "a", needs: []string{"nope"}}}); err == nil {
		t.Fatal("an unknown need was accepted")
	}
}
