package timer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func recvFire(t *testing.T, ch <-chan Fire, d time.Duration) Fire {
	t.Helper()
	select {
	case f, ok := <-ch:
		if !ok {
			t.Fatal("fire channel closed")
		}
		return f
	case <-time.After(d):
		t.Fatalf("no fire within %v", d)
	}
	return Fire{}
}

func TestScheduleEveryWatchCancel(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	c := newClient(t, s.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fires, err := c.Watch(ctx, "beat")
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.Watch(ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the service has the watches (they go out with heartbeats).
	eventually(t, 5*time.Second, "client known", func() bool { return s.Snapshot().Clients == 1 })
	if err := c.Schedule(ctx, Spec{Name: "beat", Every: Duration(100 * time.Millisecond), Payload: "hello"}); err != nil {
		t.Fatal(err)
	}
	var prev Fire
	for i := 0; i < 5; i++ {
		f := recvFire(t, fires, 5*time.Second)
		if f.Name != "beat" || f.Payload != "hello" || f.Scope != ScopeNode {
			t.Fatalf("fire %+v", f)
		}
		if !f.At.Equal(f.At.Truncate(100*time.Millisecond)) || f.FiredAt.Before(f.At) {
			t.Fatalf("fire at %v (fired %v): not on the 100 ms grid", f.At, f.FiredAt)
		}
		if i > 0 && !f.At.After(prev.At) {
			t.Fatalf("fire at %v after %v", f.At, prev.At)
		}
		prev = f
	}
	if f := recvFire(t, all, 5*time.Second); f.Name != "beat" {
		t.Fatalf("wildcard watch got %+v", f)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Spec.Name != "beat" || list[0].Fires == 0 || list[0].Next.IsZero() {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := c.Cancel(ctx, "beat"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if list, err := c.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List after Cancel = %+v, %v", list, err)
	}
	// Fires already in flight may still come, none scheduled after the cancel.
	deadline := time.After(400 * time.Millisecond)
	for done := false; !done; {
		select {
		case f := <-fires:
			if f.At.After(stopped.Add(50 * time.Millisecond)) {
				t.Fatalf("fire at %v after Cancel at %v", f.At, stopped)
			}
		case <-deadline:
			done = true
		}
	}
	if err := c.Cancel(ctx, "beat"); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("second Cancel = %v, want ErrUnknownName", err)
	}
}

func TestScheduleAtFiresOnce(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	c := newClient(t, s.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fires, err := c.Watch(ctx, "once")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "client known", func() bool { return s.Snapshot().Clients == 1 })
	at := time.Now().Add(300 * time.Millisecond).Round(time.Millisecond)
	if err := c.Schedule(ctx, Spec{Name: "once", At: at}); err != nil {
		t.Fatal(err)
	}
	f := recvFire(t, fires, 5*time.Second)
	if !f.At.Equal(at) || f.Late != (f.FiredAt.Sub(f.At) > DefaultConfig().LateAfter) {
		t.Fatalf("fire %+v, want at %v, late only if fired 500 ms after", f, at)
	}
	eventually(t, 5*time.Second, "one-shot done", func() bool {
		l := s.List()
		return len(l) == 1 && l[0].Next.IsZero() && l[0].LastFired.Equal(at)
	})
	select {
	case f := <-fires:
		t.Fatalf("second fire of a one-shot: %+v", f)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestScheduleBadInput(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	c := newClient(t, s.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bad := []Spec{
		{Name: "cron", Cron: "* * nonsense"},
		{Name: "zero", Every: 0},
		{Name: "neg", Every: Duration(-5 * time.Second)},
		{Name: "tz", Cron: "0 * * * *", TZ: "No/Where"},
		{Name: "", Every: Duration(time.Second)},
	}
	for _, sp := range bad {
		if err := c.Schedule(ctx, sp); !errors.Is(err, ErrBadSpec) {
			t.Errorf("client Schedule(%+v) = %v, want ErrBadSpec", sp, err)
		}
		if err := s.Schedule(sp); !errors.Is(err, ErrBadSpec) {
			t.Errorf("service Schedule(%+v) = %v, want ErrBadSpec", sp, err)
		}
	}
	// Past the client's own checks: the service refuses a past one-shot
	// and a spec that is not JSON.
	if err := c.Schedule(ctx, Spec{Name: "past", At: time.Now().Add(-time.Hour)}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("Schedule(at in the past) = %v, want ErrBadSpec", err)
	}
	if _, err := c.request(ctx, message{Type: msgSchedule, Data: []byte("{not json")}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("SCHEDULE with bad JSON = %v, want ErrBadSpec", err)
	}
	if _, err := c.request(ctx, message{Type: msgSchedule, Data: []byte(`{"name":"x","every":"-1s"}`)}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("SCHEDULE with every -1s = %v, want ErrBadSpec", err)
	}
	if err := c.Cancel(ctx, "nope"); !errors.Is(err, ErrUnknownName) {
		t.Errorf("Cancel(nope) = %v, want ErrUnknownName", err)
	}
	if _, err := c.Watch(ctx, "bad name"); !errors.Is(err, ErrBadSpec) {
		t.Errorf("Watch(bad name) = %v, want ErrBadSpec", err)
	}
	if err := c.Schedule(ctx, Spec{Name: "fine", Cron: "@every 1h"}); err != nil {
		t.Fatalf("a good schedule after bad ones: %v", err)
	}
	if l := s.List(); len(l) != 1 || l[0].Spec.Name != "fine" {
		t.Fatalf("List = %+v", l)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	specs := []Spec{
		{Name: "a", Every: Duration(5 * time.Second), Payload: "p"},
		{Name: "b", Cron: "0 0 3 * * *", TZ: "UTC", Scope: ScopeCluster},
		{Name: "c", At: time.Now().Add(time.Hour).Round(0).UTC()},
		{Name: "gone", Every: Duration(time.Minute)},
	}
	s1, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		if err := s1.Schedule(sp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Cancel("gone"); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := startService(t, cfg)
	l := s2.List()
	if len(l) != 3 {
		t.Fatalf("after restart: %d schedules, want 3: %+v", len(l), l)
	}
	for i, sp := range specs[:3] {
		if sp.Scope == "" {
			sp.Scope = ScopeNode
		}
		if got := l[i].Spec; got.Name != sp.Name || got.Every != sp.Every || got.Cron != sp.Cron || !got.At.Equal(sp.At) || got.Scope != sp.Scope || got.Payload != sp.Payload {
			t.Errorf("schedule %d after restart: %+v, want %+v", i, got, sp)
		}
	}
	if err := s2.Cancel("gone"); !errors.Is(err, ErrUnknownName) {
		t.Errorf("removed schedule came back: Cancel = %v", err)
	}
}

func TestLoadStateRejectsBadFiles(t *testing.T) {
	cases := map[string]string{
		"truncated": `{"version":1,"schedules":[{"spec":{"name":"a","every":"1s"}`,
		"version":   `{"version":99,"schedules":[]}`,
		"bad spec":  `{"version":1,"schedules":[{"spec":{"name":"a","cron":"nope"}}]}`,
		"garbage":   "\x00\x01binary",
	}
	for name, body := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateName), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.DataDir = dir
		if _, err := NewService(cfg); err == nil {
			t.Errorf("%s: NewService accepted a bad state file", name)
		}
	}
}
