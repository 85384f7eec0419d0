package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode"
)

// maxReportedErrors bounds the per-line errors listed in a 400 response.
const maxReportedErrors = 20

// ingestReadTimeout bounds the time to read one POST body.
const ingestReadTimeout = 30 * time.Second

// maxServiceName bounds the ?service= of an ingest request.
const maxServiceName = 128

// LineError says why one NDJSON line was refused.
type LineError struct {
	Line  int    `json:"line"` // 1-based line number in the request body
	Error string `json:"error"`
}

// IngestResult is the JSON body answering POST /api/v1/logs.
type IngestResult struct {
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	Errors   []LineError `json:"errors,omitempty"` // the first few rejections
	Error    string      `json:"error,omitempty"`  // why the request failed as a whole
}

// checkLine accepts a zerolog line: one JSON object.
func checkLine(line []byte) error {
	trimmed := bytes.TrimLeft(line, " \t")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	if !json.Valid(line) {
		return errors.New("invalid JSON")
	}
	return nil
}

// eachLine calls fn for every non-empty line of an NDJSON body with its
// 1-based line number; a trailing "\r" is removed. It stops at fn's error.
func eachLine(body []byte, fn func(n int, line []byte) error) error {
	for n := 1; len(body) > 0; n++ {
		line, rest, _ := bytes.Cut(body, []byte{'\n'})
		body = rest
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return nil
}

// validService refuses service names that would not read well in a topic,
// a file name or a table.
func validService(name string) error {
	if len(name) > maxServiceName {
		return fmt.Errorf("service name longer than %d bytes", maxServiceName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("service name %q has a space or control character", name)
		}
	}
	return nil
}

// handleIngest serves POST /api/v1/logs: an NDJSON body of zerolog lines,
// each handed to the log source as if a zerolog writer had sent it. The
// body is read whole first, so an oversize body (413) ingests nothing.
// Malformed lines are refused (400, with their line numbers) while every
// valid line of the same body is accepted: nothing accepted is lost, and
// the client knows exactly which lines to fix.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	service := r.URL.Query().Get("service")
	if service == "" {
		service = s.cfg.DefaultService
	}
	if err := validService(service); err != nil {
		writeJSON(w, http.StatusBadRequest, IngestResult{Error: "dashboard: ingest: " + err.Error()})
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		s.tooLarge(w)
		return
	}
	select { // bound the bodies held in memory at once
	case s.ingest <- struct{}{}:
		defer func() { <-s.ingest }()
	case <-r.Context().Done():
		return
	}
	// A client trickling its body must not hold a slot forever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(ingestReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.tooLarge(w)
			return
		}
		writeJSON(w, http.StatusBadRequest, IngestResult{Error: "dashboard: ingest: read body: " + err.Error()})
		return
	}
	var res IngestResult
	srcErr := eachLine(body, func(n int, line []byte) error {
		if err := checkLine(line); err != nil {
			res.Rejected++
			if len(res.Errors) < maxReportedErrors {
				res.Errors = append(res.Errors, LineError{Line: n, Error: err.Error()})
			}
			return nil
		}
		if err := s.cfg.Logs.Ingest(service, line); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		res.Accepted++
		return nil
	})
	s.linesAccepted.Add(uint64(res.Accepted))
	s.linesRejected.Add(uint64(res.Rejected))
	switch {
	case srcErr != nil:
		res.Error = "dashboard: ingest: " + srcErr.Error()
		writeJSON(w, http.StatusServiceUnavailable, res)
	case res.Rejected > 0:
		res.Error = fmt.Sprintf("dashboard: ingest: %d malformed line(s), first at line %d", res.Rejected, res.Errors[0].Line)
		writeJSON(w, http.StatusBadRequest, res)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.bodiesTooLarge.Add(1)
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusRequestEntityTooLarge,
		IngestResult{Error: fmt.Sprintf("dashboard: ingest: body larger than %d bytes", s.cfg.MaxBody)})
}
