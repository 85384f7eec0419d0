package dashboard

import (
	"bufio"
	"bytes"
	"net/http"
	"time"
)

// writeTimeout bounds one write to a stream client: a client that does not
// read for that long is cut off instead of holding a goroutine forever.
const writeTimeout = 10 * time.Second

// sseWriter writes Server-Sent Events to one client, buffered; flush sends
// what was written. It is used by one goroutine.
type sseWriter struct {
	rc  *http.ResponseController
	buf *bufio.Writer
}

// startSSE sends the SSE headers and a retry hint, so the page's
// EventSource reconnects within a second after logd restarts.
func startSSE(w http.ResponseWriter) (*sseWriter, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell reverse proxies not to buffer
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{rc: http.NewResponseController(w), buf: bufio.NewWriterSize(w, 16<<10)}
	_, _ = s.buf.WriteString("retry: 1000\n\n")
	return s, s.flush()
}

// event writes one event; data may hold newlines (each line becomes a data
// field, as the SSE format requires).
func (s *sseWriter) event(name string, data []byte) {
	if name != "" {
		_, _ = s.buf.WriteString("event: ")
		_, _ = s.buf.WriteString(name)
		_ = s.buf.WriteByte('\n')
	}
	for {
		line, rest, more := bytes.Cut(data, []byte{'\n'})
		_, _ = s.buf.WriteString("data: ")
		_, _ = s.buf.Write(line)
		_ = s.buf.WriteByte('\n')
		if !more {
			break
		}
		data = rest
	}
	_ = s.buf.WriteByte('\n')
}

// heartbeat writes a comment line, which EventSource ignores.
func (s *sseWriter) heartbeat() { _, _ = s.buf.WriteString(": hb\n\n") }

// flush sends everything buffered to the client.
func (s *sseWriter) flush() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.buf.Flush(); err != nil {
		return err
	}
	return s.rc.Flush()
}
