package logpub

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestKill9HubLosesNothingSilently kills the hub process with SIGKILL in
// the middle of a stream, restarts it, and checks that every event the
// Writer accepted is in the capture file or counted as dropped.
func TestKill9HubLosesNothingSilently(t *testing.T) {
	dir := t.TempDir()
	ep := "ipc://" + filepath.Join(dir, "w.sock")
	capDir := filepath.Join(dir, "cap")
	p := startHubProcess(t, ep, capDir)
	w := NewWriter(WriterOptions{Endpoint: ep, Service: "api", MaxEvents: 20000})
	log := zerolog.New(w)
	const total = 30000
	for i := 0; i < total; i++ {
		log.Info().Int("i", i).Str("pad", "0123456789012345678901234567890123456789").Msg("k")
		if i == total/3 {
			waitFor(t, "some acks", func() bool { return w.Stats().Acked > 0 })
			p.kill()
		}
		if i == 2*total/3 {
			p = startHubProcess(t, ep, capDir)
		}
	}
	if err := w.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	p.stop()
	st := w.Stats()
	b, err := os.ReadFile(filepath.Join(capDir, "api.log"))
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, total)
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	for _, l := range lines {
		var i int
		s := string(l)
		k := strings.Index(s, `"i":`)
		if k < 0 {
			if strings.Contains(s, `"dropped"`) {
				continue
			}
			t.Fatalf("foreign line in capture: %q", s)
		}
		for _, c := range s[k+4:] {
			if c < '0' || c > '9' {
				break
			}
			i = i*10 + int(c-'0')
		}
		seen[i] = true
	}
	var missing uint64
	for _, ok := range seen {
		if !ok {
			missing++
		}
	}
	t.Logf("accepted %d, acked %d, dropped %d, captured lines %d (with repeats), missing %d", st.Accepted, st.Acked, st.Dropped, len(lines), missing)
	// Writes refused for a full queue never got an event number in the
	// file; every other missing event must be counted as dropped.
	if missing > st.Dropped {
		t.Fatalf("%d events missing from the capture but only %d counted as dropped", missing, st.Dropped)
	}
	if st.Accepted+st.Dropped < total {
		t.Fatalf("accepted %d + dropped %d < %d written", st.Accepted, st.Dropped, total)
	}
}
