package logpub

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a logd-like hub process for tests and
// benchmarks that need a real process (kill -9, RSS): with LOGPUB_HELPER=hub
// it runs a Hub configured from the environment, prints its endpoints and
// serves until stdin closes.
func runHelperProcess() bool {
	if os.Getenv("LOGPUB_HELPER") != "hub" {
		return false
	}
	cfg := DefaultHubConfig()
	cfg.WriterEndpoint = os.Getenv("LOGPUB_HELPER_WRITER")
	cfg.PubEndpoint = "tcp://127.0.0.1:0"
	cfg.Capture.Dir = os.Getenv("LOGPUB_HELPER_CAPTURE")
	if os.Getenv("LOGPUB_HELPER_SMALL_RING") != "" {
		cfg.RingEvents, cfg.RingBytes = 20000, 8<<20
	}
	h, err := NewHub(cfg)
	if err == nil {
		err = h.Start(context.Background())
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("PUB %s\n", h.PubEndpoint())
	io.Copy(io.Discard, os.Stdin)
	h.Close()
	return true
}

// hubProcess is a Hub running in a child process.
type hubProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pub   string
}

func startHubProcess(t testing.TB, writerEP, captureDir string, extraEnv ...string) *hubProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOGPUB_HELPER=hub", "LOGPUB_HELPER_WRITER="+writerEP, "LOGPUB_HELPER_CAPTURE="+captureDir)
	for _, e := range extraEnv {
		if e != "" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hubProcess{cmd: cmd, stdin: stdin}
	t.Cleanup(p.stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PUB ") {
		t.Fatalf("hub process: %q %v", line, err)
	}
	p.pub = strings.TrimSpace(strings.TrimPrefix(line, "PUB "))
	return p
}

// stop ends the process gracefully (closing stdin), killing it if needed.
func (p *hubProcess) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// kill sends SIGKILL and reaps the process.
func (p *hubProcess) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// rssKiB reads the resident set size of the process.
func (p *hubProcess) rssKiB() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var n int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &n)
			return n
		}
	}
	return 0
}
