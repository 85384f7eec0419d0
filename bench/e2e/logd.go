package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// Bins are the binaries under test.
type Bins struct {
	Logd    string
	Logtail string
	// Profiling is true when Logd was built with the profiling hook
	// (flags --bench-cpuprofile and --bench-memprofile).
	Profiling bool
}

// moduleRoot returns the directory of go.mod, from this source file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build compiles cmd/logd and cmd/logtail into dir. With profiling, logd
// gets testdata/logd_profile.go through `go build -overlay`: a component
// that writes CPU and heap profiles, added without touching cmd/logd.
func Build(ctx context.Context, dir string, profiling bool) (Bins, error) {
	root := moduleRoot()
	b := Bins{Logd: filepath.Join(dir, "logd"), Logtail: filepath.Join(dir, "logtail"), Profiling: profiling}
	logdArgs := []string{"build", "-o", b.Logd}
	if profiling {
		ov := map[string]map[string]string{"Replace": {
			filepath.Join(root, "cmd", "logd", "zz_benchprofile.go"): filepath.Join(root, "bench", "e2e", "testdata", "logd_profile.go"),
		}}
		js, _ := json.Marshal(ov)
		ovFile := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(ovFile, js, 0o644); err != nil {
			return b, fmt.Errorf("e2e: overlay: %w", err)
		}
		logdArgs = append(logdArgs, "-overlay", ovFile)
	}
	for _, args := range [][]string{append(logdArgs, "./cmd/logd"), {"build", "-o", b.Logtail, "./cmd/logtail"}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("e2e: go %v: %w\n%s", args, err, out)
		}
	}
	return b, nil
}

// logd is a running logd, isolated: its own data directory, loopback only,
// its own beacon port, no Harmony worker.
type logd struct {
	*proc
	writerEndpoint string
	pubEndpoint    string
	captureDir     string
}

// startLogd starts logd with its data in dir and waits until its writer and
// publish endpoints accept connections. profile, if not "", is the prefix of
// the CPU and heap profiles (Bins.Profiling only).
func startLogd(ctx context.Context, bins Bins, dir, profile string) (*logd, error) {
	wport, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	pport, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	bport, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	l := &logd{
		writerEndpoint: "tcp://127.0.0.1:" + strconv.Itoa(wport),
		pubEndpoint:    "tcp://127.0.0.1:" + strconv.Itoa(pport),
		captureDir:     filepath.Join(dir, "capture"),
	}
	args := []string{"run",
		"--data-dir", dir,
		"--name", "bench",
		"--log-level", "warn",
		"--interface", "lo", "--broadcast", "127.255.255.255",
		"--beacon-port", strconv.Itoa(bport),
		"--bind", "127.0.0.1",
		"--writer-endpoint", l.writerEndpoint,
		"--pub-bind", l.pubEndpoint,
		"--ship-bind", "tcp://127.0.0.1:0",
		"--timer-endpoint", "tcp://127.0.0.1:0",
		"--harmony=false",
		"--rotate-size", "4GiB", "--rotate-every", "0",
	}
	if profile != "" && bins.Profiling {
		args = append(args, "--bench-cpuprofile", profile+".cpu", "--bench-memprofile", profile+".mem")
	}
	p, err := startProc(bins.Logd, args, nil)
	if err != nil {
		return nil, err
	}
	l.proc = p
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, port := range []int{wport, pport} {
		if err := waitTCP(wctx, p, "127.0.0.1:"+strconv.Itoa(port)); err != nil {
			_ = p.stop(5 * time.Second)
			return nil, err
		}
	}
	return l, nil
}
