package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// proc is a child process started by the harness.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{}
	err    error
	once   sync.Once
}

// startProc starts name with args, and env added to this process's. The child gets SIGKILL if this process
// dies first, so a crashed or timed-out harness leaves nothing running.
func startProc(name string, args []string, env []string) (*proc, error) {
	return startProcOut(name, args, env, nil)
}

// startProcOut is startProc with the child's stdout on the write end of a
// pipe (closed here once the child has it), or discarded if stdout is nil.
func startProcOut(name string, args []string, env []string, stdout *os.File) (*proc, error) {
	cmd := exec.Command(name, args...)
	// The caller's LOGD_*, LOGTAIL_* and LOGPUB_* settings stay out of the run.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOGD_") && !strings.HasPrefix(kv, "LOGTAIL_") && !strings.HasPrefix(kv, "LOGPUB_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if stdout != nil {
		cmd.Stdout = stdout
		defer stdout.Close()
	}
	return p, p.start()
}

func (p *proc) start() error {
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("e2e: start %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, with its error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, fmt.Errorf("e2e: %s exited: %v; stderr: %s", p.name, p.err, p.stderr.String())
	default:
		return false, nil
	}
}

// stop sends SIGTERM, waits up to grace, then kills. It returns the
// process's exit error only if it had to be killed.
func (p *proc) stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("e2e: %s ignored SIGTERM for %v, killed", p.name, grace)
		}
	})
	return err
}

// cpuSeconds returns utime+stime of pid.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("e2e: cpu of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields are counted after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("e2e: cpu of %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("e2e: cpu of %d: short stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("e2e: cpu of %d: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

// peakRSSMiB returns VmHWM of pid in MiB.
func peakRSSMiB(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("e2e: rss of %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("e2e: rss of %d: %w", pid, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("e2e: rss of %d: no VmHWM", pid)
}

// freePort returns a TCP (or UDP) port free on 127.0.0.1 right now.
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("e2e: free udp port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("e2e: free tcp port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP polls until addr accepts a connection, p exits, or ctx ends.
func waitTCP(ctx context.Context, p *proc, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if gone, perr := p.exited(); gone {
			return perr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("e2e: %s not listening on %s: %w; stderr: %s", p.name, addr, ctx.Err(), p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last max bytes written to it (a child's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
