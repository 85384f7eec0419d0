package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// bins holds logd built once for the whole test binary.
var bins struct {
	dir  string
	logd string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "logmesh-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins.dir = dir
	bins.logd = filepath.Join(dir, "logd")
	out, err := exec.Command("go", "build", "-o", bins.logd, "github.com/logmesh/logmesh/cmd/logd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build logd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// soak reports whether the long versions run (LOGMESH_SOAK=1, make soak).
func soak() bool { return os.Getenv("LOGMESH_SOAK") == "1" }

// pick returns short in the default run and long under LOGMESH_SOAK=1.
func pick[T any](short, long T) T {
	if soak() {
		return long
	}
	return short
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if diag != nil {
				msg = diag()
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", d, what, msg)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}
