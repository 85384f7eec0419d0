package dashboard

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzIngestBody feeds arbitrary bodies to the NDJSON splitter and line
// check of POST /api/v1/logs: no panic, every line is either accepted (a
// valid JSON object) or rejected, line numbers increase within the body.
func FuzzIngestBody(f *testing.F) {
	f.Add([]byte("{\"level\":\"info\",\"message\":\"hi\"}\n{\"level\":\"warn\"}\n"))
	f.Add([]byte("{\"level\":\"info\"}\r\n\r\n{\"a\":[1,2,{\"b\":null}]}"))
	f.Add([]byte("{\"level\":\"info\",\"n\":\n[1]\nplain\n\"str\"\n"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("{\"\xff\":1}\n{"))
	f.Add([]byte(" \t{\"x\":1}  \n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		lines := bytes.Count(body, []byte{'\n'}) + 1
		last, accepted, rejected := 0, 0, 0
		err := eachLine(body, func(n int, line []byte) error {
			if n <= last || n > lines {
				t.Fatalf("line number %d after %d (body has %d lines)", n, last, lines)
			}
			last = n
			if len(bytes.TrimSpace(line)) == 0 || bytes.ContainsAny(line, "\n") {
				t.Fatalf("line %d is empty or holds a newline: %q", n, line)
			}
			if checkLine(line) != nil {
				rejected++
				return nil
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(line, &obj); err != nil {
				t.Fatalf("accepted line %d is not a JSON object: %q: %v", n, line, err)
			}
			accepted++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if accepted+rejected > lines {
			t.Fatalf("%d accepted + %d rejected > %d lines", accepted, rejected, lines)
		}
	})
}
