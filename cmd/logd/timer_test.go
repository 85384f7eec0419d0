package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/timer"
)

func (p *logdProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("logd exited with %v\n%s", err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("logd did not stop within 10 s\n%s", p.stderr)
	}
}

// logdCmd runs a logd subcommand and returns stdout, stderr and exit code.
func logdCmd(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestTimerCommands(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	dir := t.TempDir()
	p := runLogd(t, bin, dir, "timer-a", port)
	dd := "--data-dir=" + dir
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, code := logdCmd(t, bin, "timer", "ls", dd); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logd timer ls never succeeded\n%s", p.stderr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}

	if out, errOut, code := logdCmd(t, bin, "timer", "add", "beat", "--every", "100ms", "--payload", "hi", dd); code != 0 || !strings.Contains(out, "added beat") {
		t.Fatalf("add beat: code %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := logdCmd(t, bin, "timer", "add", "nightly", "--cron", "0 0 3 * * *", "--tz", "UTC", "--scope", "cluster", dd); code != 0 {
		t.Fatalf("add nightly: code %d, %q", code, errOut)
	}
	out, _, code := logdCmd(t, bin, "timer", "watch", "beat", "--count", "3", dd)
	if code != 0 || strings.Count(out, "fire beat ") != 3 || !strings.Contains(out, `payload="hi"`) {
		t.Fatalf("watch beat: code %d, %q", code, out)
	}
	out, _, code = logdCmd(t, bin, "timer", "watch", "--tick", "100ms", "--count", "3", dd)
	if code != 0 || strings.Count(out, "tick 100ms n=") != 3 {
		t.Fatalf("watch --tick: code %d, %q", code, out)
	}

	bad := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"timer", "add", "x", "--cron", "61 * * * *"}, 1, "invalid schedule"},
		{[]string{"timer", "add", "x", "--every", "-5s"}, 1, "at least 1ms"},
		{[]string{"timer", "add", "x", "--every", "0s"}, 1, "invalid schedule"},
		{[]string{"timer", "add", "x"}, 2, "exactly one"},
		{[]string{"timer", "add", "--every", "1s"}, 2, "NAME is required"},
		{[]string{"timer", "rm", "nope"}, 1, "unknown schedule"},
		{[]string{"timer", "watch", "--tick", "7ms", "--count", "1"}, 1, "unsupported tick period"},
		{[]string{"timer", "frobnicate"}, 2, "unknown subcommand"},
	}
	for _, b := range bad {
		_, errOut, code := logdCmd(t, bin, append(b.args, dd)...)
		if code != b.code || !strings.Contains(errOut, b.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", b.args, code, errOut, b.code, b.msg)
		}
	}
	if out, _, code := logdCmd(t, bin, "timer", "rm", "beat", dd); code != 0 || !strings.Contains(out, "removed beat") {
		t.Fatalf("rm beat: code %d, %q", code, out)
	}
	if _, errOut, code := logdCmd(t, bin, "timer", "add", "jobs/a", "--at", "+1h", dd); code != 0 {
		t.Fatalf("add jobs/a: code %d, %q", code, errOut)
	}
	if out, errOut, code := logdCmd(t, bin, "timer", "rm", "jobs/a", dd); code != 0 || !strings.Contains(out, "removed jobs/a") {
		t.Fatalf("rm jobs/a: code %d, %q %q", code, out, errOut)
	}

	// The schedules survive a restart of logd.
	p.stop(t)
	runLogd(t, bin, dir, "timer-a", port)
	var list []timer.ScheduleInfo
	deadline = time.Now().Add(20 * time.Second)
	for {
		out, _, code := logdCmd(t, bin, "timer", "ls", "--json", dd)
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				t.Fatalf("ls --json: %v\n%s", err, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("logd timer ls failed after restart")
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	if len(list) != 1 || list[0].Spec.Name != "nightly" || list[0].Spec.Scope != timer.ScopeCluster || list[0].Spec.Cron != "0 0 3 * * *" {
		t.Fatalf("after restart: %+v", list)
	}
	out, _, code = logdCmd(t, bin, "timer", "ls", dd)
	if code != 0 || !strings.Contains(out, "nightly") || !strings.Contains(out, `cron "0 0 3 * * *" UTC`) {
		t.Fatalf("ls table: %q", out)
	}
}

// TestTimerWatchAcrossLogdRestart: `logd timer watch --tick` keeps going
// while its logd is stopped and started again on the same data dir (the
// timer keeps its port): the ticks resume, it says on stderr that it
// lost the connection, and it prints all the lines it was asked for.
func TestTimerWatchAcrossLogdRestart(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	dir := t.TempDir()
	dd := "--data-dir=" + dir
	p := runLogd(t, bin, dir, "timer-a", port)
	pollUntil(t, 20*time.Second, "the timer status", func() bool {
		_, _, code := logdCmd(t, bin, "timer", "status", dd)
		return code == 0
	}, p.stderr.String)

	const want = 30
	watch := exec.Command(bin, "timer", "watch", "--tick", "100ms", "--count", strconv.Itoa(want), dd)
	var errOut lockedBuffer
	watch.Stderr = &errOut
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill() })
	lines := make(chan string, want+1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(d time.Duration) string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended early; stderr %q", errOut.String())
			}
			return l
		case <-time.After(d):
			t.Fatalf("no tick within %v; stderr %q\nlogd: %s", d, errOut.String(), p.stderr)
		}
		return ""
	}
	var got []string
	for len(got) < 3 {
		got = append(got, next(10*time.Second))
	}
	p.stop(t)
	down := time.Now()
	p = runLogd(t, bin, dir, "timer-a", port)
	for len(got) < want {
		got = append(got, next(20*time.Second))
	}
	if err := watch.Wait(); err != nil {
		t.Fatalf("watch: %v; stderr %q", err, errOut.String())
	}
	after := 0
	for _, l := range got {
		if !strings.HasPrefix(l, "tick 100ms n=") {
			t.Fatalf("unexpected line %q", l)
		}
		at, _, _ := strings.Cut(strings.SplitN(l, "at=", 2)[1], " ")
		ts, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ts.After(down) {
			after++
		}
	}
	if after == 0 {
		t.Fatalf("no tick from the restarted logd: %q", got)
	}
	if !strings.Contains(errOut.String(), "connection lost") {
		t.Errorf("watch did not say it lost the connection: stderr %q", errOut.String())
	}
	t.Logf("%d of %d ticks after the restart; stderr %q", after, want, errOut.String())
}
