package harmony

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"
)

// The test binary doubles as a worker process: with HARMONY_TEST_WORKER=1
// it runs a Worker, prints its endpoint and serves until stdin closes.
func TestMain(m *testing.M) {
	if os.Getenv("HARMONY_TEST_WORKER") == "1" {
		os.Exit(runTestWorker())
	}
	goleak.VerifyTestMain(m)
}

func runTestWorker() int {
	w, err := NewWorker(WorkerConfig{DialWait: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(w.Endpoint())
	io.Copy(io.Discard, os.Stdin)
	w.Close()
	return 0
}

// workerProc is a worker running as its own process.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ep    string
}

func startWorkerProc(t *testing.T) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARMONY_TEST_WORKER=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		p.stdin.Close()
		p.cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("worker process: %v", err)
	}
	p.ep = strings.TrimSpace(line)
	return p
}

func (p *workerProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// genLines makes n zerolog-like lines, deterministic for a seed.
func genLines(n int, seed uint64) []byte {
	levels := []string{"debug", "info", "info", "info", "warn", "error"}
	services := []string{"api", "db", "web", "auth"}
	msgs := []string{"request served", "cache miss", "timeout talking to db", "user login", "retrying"}
	b := make([]byte, 0, n*100)
	x := seed*2654435761 + 1
	base := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC).Unix()
	var ts string
	for i := range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if i%50 == 0 {
			ts = time.Unix(base+int64(i)/50, 0).UTC().Format(time.RFC3339)
		}
		b = append(b, `{"level":"`...)
		b = append(b, levels[x%6]...)
		b = append(b, `","service":"`...)
		b = append(b, services[(x>>8)%4]...)
		b = append(b, `","time":"`...)
		b = append(b, ts...)
		b = append(b, `","n":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"message":"`...)
		b = append(b, msgs[(x>>16)%5]...)
		b = append(b, "\"}\n"...)
	}
	return b
}

// cut splits data into tasks as LoadSources would, without touching disk.
func cut(data []byte, source string, chunk int) []Task {
	var tasks []Task
	line := uint64(1)
	for len(data) > 0 {
		end, n := 0, 0
		for n < chunk && end < len(data) {
			i := bytes.IndexByte(data[end:], '\n')
			if i < 0 {
				end = len(data)
			} else {
				end += i + 1
			}
			n++
		}
		tasks = append(tasks, Task{Source: source, FirstLine: line, Lines: n, Data: data[:end]})
		data = data[end:]
		line += uint64(n)
	}
	return tasks
}

func mustJob(t testing.TB, spec string) Job {
	t.Helper()
	j, err := ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func localRun(t testing.TB, job Job, tasks []Task) ([]byte, Report) {
	t.Helper()
	var buf bytes.Buffer
	rep, err := RunLocal(context.Background(), job, tasks, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), rep
}

func newBatchID() BatchID { return BatchID(uuid.New()) }

func startWorkers(t *testing.T, n int) []*Worker {
	t.Helper()
	var ws []*Worker
	for range n {
		w, err := NewWorker(WorkerConfig{DialWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		ws = append(ws, w)
	}
	return ws
}

func endpoints(ws []*Worker) StaticWorkers {
	var eps StaticWorkers
	for _, w := range ws {
		eps = append(eps, w.Endpoint())
	}
	return eps
}

// syncBuffer is a bytes.Buffer safe to read while a collector writes it.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.buf.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return append([]byte(nil), s.buf.Bytes()...)
}

// distRun runs one batch over workers, collector and ventilator in this
// process, and returns the output and report.
func distRun(t *testing.T, job Job, tasks []Task, workers WorkerSource, vcfg VentilatorConfig) ([]byte, Report) {
	t.Helper()
	id := newBatchID()
	out := newSyncBuffer()
	c, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: out, ResendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vcfg.Batch, vcfg.Job, vcfg.Tasks, vcfg.Collector, vcfg.Workers = id, job, tasks, c.Endpoint(), workers
	v, err := NewVentilator(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("collector: %v (stats %+v, ventilator %+v)", err, c.Stats(), v.Stats())
	}
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("ventilator: %v (%+v)", err, v.Stats())
	}
	return out.Bytes(), rep
}
