package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// EventSize is the size of every event line, newline included.
const EventSize = 200

// event returns a zerolog line of EventSize bytes carrying n and the send
// time t (Unix nanoseconds) in field "t".
func event(n int, t int64) []byte {
	head := `{"level":"info","t":` + strconv.FormatInt(t, 10) + `,"n":` + strconv.Itoa(n) + `,"pad":"`
	tail := `","message":"bench"}` + "\n"
	return []byte(head + strings.Repeat("x", EventSize-len(head)-len(tail)) + tail)
}

// eventTime extracts field "t" from a line made by event; ok is false for
// other lines.
func eventTime(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(`"t":`))
	if i < 0 {
		return 0, false
	}
	rest := line[i+4:]
	j := bytes.IndexByte(rest, ',')
	if j < 0 {
		return 0, false
	}
	t, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return t, err == nil
}

// eventLines returns 1024 distinct events to send round-robin, so the load
// generator spends its time sending, not formatting.
func eventLines() [][]byte {
	lines := make([][]byte, 1024)
	for i := range lines {
		lines[i] = event(i, 0)
	}
	return lines
}

// sendWriter hands n events to a logpub.Writer on endpoint, as an app does,
// waiting only when the Writer holds more than half its bound (so nothing
// is dropped), then closes the Writer (which waits for logd's acks).
func sendWriter(ctx context.Context, endpoint string, n int) error {
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: endpoint, Service: "bench",
		MaxEvents: 1 << 17, MaxBytes: 64 << 20, CloseTimeout: 60 * time.Second})
	lines := eventLines()
	for i := 0; i < n; i++ {
		if i%256 == 0 {
			for w.Stats().Queued > 1<<16 {
				if ctx.Err() != nil {
					w.Close()
					return ctx.Err()
				}
				time.Sleep(100 * time.Microsecond) // pacing, not waiting for a condition
			}
		}
		w.WriteLevel(zerolog.InfoLevel, lines[i%len(lines)])
	}
	err := w.Close()
	if st := w.Stats(); st.Dropped != 0 {
		return fmt.Errorf("e2e: logpub writer dropped %d of %d events", st.Dropped, n)
	}
	return err
}

// sendTCP streams n newline-framed events to addr over one TCP connection,
// through a 64 KiB buffer: how an app or a forwarder feeds rsyslog's imtcp.
func sendTCP(ctx context.Context, addr string, n int) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("e2e: dial %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now()) })
	defer stop()
	w := bufio.NewWriterSize(c, 64<<10)
	lines := eventLines()
	for i := 0; i < n; i++ {
		if _, err := w.Write(lines[i%len(lines)]); err != nil {
			return fmt.Errorf("e2e: send to %s: %w", addr, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("e2e: send to %s: %w", addr, err)
	}
	return nil
}

// rawSink is the ceiling: a TCP listener that copies what it receives to a
// file, nothing else (no framing, parsing or acks).
type rawSink struct {
	l    net.Listener
	out  string
	done chan error
}

func startRawSink(out string) (*rawSink, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("e2e: raw sink: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("e2e: raw sink: %w", err)
	}
	s := &rawSink{l: l, out: out, done: make(chan error, 1)}
	go func() {
		defer f.Close()
		c, err := l.Accept()
		if err != nil {
			s.done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(f, bufio.NewReaderSize(c, 64<<10))
		s.done <- err
	}()
	return s, nil
}

func (s *rawSink) close() error {
	s.l.Close()
	select {
	case err := <-s.done:
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("e2e: raw sink did not finish")
	}
}

// lineCounter counts the lines of a file as it grows.
type lineCounter struct {
	path  string
	f     *os.File
	buf   []byte
	lines int
	bytes int64
}

// poll reads what was appended since the last call.
func (c *lineCounter) poll() error {
	if c.f == nil {
		f, err := os.Open(c.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("e2e: count lines: %w", err)
		}
		c.f, c.buf = f, make([]byte, 1<<20)
	}
	for {
		n, err := c.f.Read(c.buf)
		c.lines += bytes.Count(c.buf[:n], []byte{'\n'})
		c.bytes += int64(n)
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("e2e: count lines of %s: %w", c.path, err)
		}
	}
}

func (c *lineCounter) close() {
	if c.f != nil {
		c.f.Close()
	}
}

// waitLines polls path every millisecond until it holds n lines, failed
// reports an error (a dead server, a failed sender), or ctx ends.
func waitLines(ctx context.Context, path string, n int, failed func() error) (int, error) {
	c := &lineCounter{path: path}
	defer c.close()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.poll(); err != nil {
			return c.lines, err
		}
		if c.lines >= n {
			return c.lines, nil
		}
		if err := failed(); err != nil {
			return c.lines, err
		}
		select {
		case <-ctx.Done():
			return c.lines, fmt.Errorf("e2e: %d of %d lines in %s: %w", c.lines, n, path, ctx.Err())
		case <-tick.C:
		}
	}
}
