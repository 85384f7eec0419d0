package logpub

import (
	"bufio"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
)

// readHistorySequential is how history was read before the merge
// (history_merge.go): each capture file key's lines in full, one key after
// the other, so not in receive-time order across keys. It is kept as the
// baseline of BenchmarkHistory; filters are applied as readHistory does.
func readHistorySequential(snaps []fileSnap, since time.Time, flt *Filter, node uuid.UUID, emit func([]qent) error) error {
	var batch []qent
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := emit(batch)
		batch = batch[:0]
		return err
	}
	for i := range snaps {
		fs := &snaps[i]
		fifo := make([]histLine, 0, min(fs.skip, 4096))
		head := 0
		consider := func(hl histLine) error {
			lvl := levelOf(hl.line)
			if !hl.inSince || !flt.matchLevel(lvl) || (len(flt.Services) > 0 && (hl.service == "" || !flt.matchService(hl.service))) {
				return nil
			}
			batch = append(batch, qent{hist: true, ev: &Event{Node: node, Service: hl.service, Level: lvl, Received: hl.recv, History: true, Line: hl.line}})
			if len(batch) >= 1024 {
				return flush()
			}
			return nil
		}
		lastInSince := false // the latest line with a known time was at or after since
		for j, f := range fs.files {
			var r io.Reader = f
			if strings.HasSuffix(f.Name(), ".gz") {
				zr, err := gzip.NewReader(f)
				if err != nil {
					continue // a damaged archive: skip it, keep serving
				}
				r = zr
			}
			if j == len(fs.files)-1 && fs.limit >= 0 && !strings.HasSuffix(f.Name(), ".gz") && filepath.Base(f.Name()) == fs.key+".log" {
				r = io.LimitReader(r, fs.limit)
			}
			br := bufio.NewReaderSize(r, 64<<10)
			var ixr io.Reader
			if fs.idx[j] != nil {
				ixr = fs.idx[j]
			}
			ix := newIdxReader(ixr)
			var off int64
			for {
				line, n, err := readLine(br)
				if len(line) > 0 {
					hl := histLine{line: line}
					if svc, recv, ok := ix.lookup(off); ok {
						hl.service, hl.recv = svc, time.Unix(0, recv)
						hl.inSince = !hl.recv.Before(since)
						lastInSince = hl.inSince
					} else {
						if !fs.shared {
							hl.service = fs.key
						}
						if t, res, ok := lineTime(line); ok {
							hl.recv, hl.inSince = t, t.Add(res).After(since)
							lastInSince = hl.inSince
						} else {
							hl.inSince = lastInSince
						}
					}
					if fs.skip == 0 {
						if err := consider(hl); err != nil {
							return err
						}
					} else if len(fifo) < fs.skip {
						fifo = append(fifo, hl)
					} else {
						old := fifo[head]
						fifo[head] = hl
						head = (head + 1) % fs.skip
						if err := consider(old); err != nil {
							return err
						}
					}
				}
				off += int64(n)
				if err != nil {
					break
				}
			}
		}
	}
	return flush()
}

// BenchmarkHistory reads a hub's whole capture history (40000 200-byte
// events, over 1, 4 or 16 services, rotated and compressed files, the
// last 1000 in the ring) with the receive-time merge and with the former
// key-after-key read, alternately in the same run: ratio is the merge's
// time over the former's. The services take turns every event (run1: the
// merge switches files at every line, its worst case) or every 32 events
// (run32, as writers' batches arrive). Goal: ≤ 1.1 up to 4 services,
// ≤ 1.5 for the worst case of 16.
func BenchmarkHistory(b *testing.B) {
	for _, c := range []struct{ nsvc, run int }{{1, 1}, {4, 1}, {16, 1}, {16, 32}} {
		nsvc := c.nsvc
		b.Run("services"+strconv.Itoa(nsvc)+"/run"+strconv.Itoa(c.run), func(b *testing.B) {
			dir := b.TempDir()
			h := startHub(b, func(c *HubConfig) {
				c.RingEvents = 1000
				c.Capture = CaptureConfig{Dir: dir, MaxSize: 256 << 10}
			})
			const n = 40000
			for i := 0; i < n; i++ {
				line := event200(i)
				if err := h.Ingest("svc"+strconv.Itoa(i/c.run%nsvc), line[:len(line)-1]); err != nil {
					b.Fatal(err)
				}
			}
			waitArchives(b, dir, 1)
			since := time.Now().Add(-time.Hour)
			read := func(fn func([]fileSnap, time.Time, *Filter, uuid.UUID, func([]qent) error) error) time.Duration {
				files := historyFiles(b, h, since)
				start := time.Now()
				got := 0
				if err := fn(files, since, &Filter{}, h.cfg.Node, func(q []qent) error { got += len(q); return nil }); err != nil {
					b.Fatal(err)
				}
				d := time.Since(start)
				if got != n-1000 {
					b.Fatalf("%d events from the files, want %d", got, n-1000)
				}
				return d
			}
			var merged, former time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 { // alternate, so that neither always runs on the other's garbage
					merged += read(readHistory)
					former += read(readHistorySequential)
				} else {
					former += read(readHistorySequential)
					merged += read(readHistory)
				}
			}
			b.StopTimer()
			ev := float64(b.N) * (n - 1000)
			b.ReportMetric(ev/merged.Seconds(), "merged-events/s")
			b.ReportMetric(ev/former.Seconds(), "former-events/s")
			b.ReportMetric(float64(merged)/float64(former), "ratio")
		})
	}
}
