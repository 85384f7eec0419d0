package logpub

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The capture files hold the JSON lines only, byte-identical. To resume a
// collector from events the ring no longer holds, the hub must still know
// which (source, seq) each of the last lines of a capture file is: the
// seqIndex remembers, in capture order, runs of consecutive sequences of
// one source with the bytes they took. Capture order is acceptance order
// under the Hub's lock, so the last N lines of a key's files are the
// index's last N events of that key; a byte count per run checks the
// alignment before anything is sent (files edited or cut by hand give no
// history, and the collector counts a gap).

// seqIndexMaxRuns bounds the index (a run is one accepted batch of one
// source, about 80 bytes): it covers at least the last 131072 batches.
const seqIndexMaxRuns = 1 << 17

type seqRun struct {
	key, service string
	source       uint64
	first        uint64 // sequences first .. first+count-1
	count        uint32
	bytes        uint64 // their lines' bytes in the capture file
	recv         int64  // when the hub received them (unix ns)
}

// seqIndex is a circular buffer of runs, owned by the capture and used
// under the Hub's lock.
type seqIndex struct {
	runs   []seqRun
	head   int
	n      int
	perKey map[string]int // events covered per capture key
}

// add records captured events of one source (in order, sequences
// increasing); consecutive sequences make one run.
func (x *seqIndex) add(key, service string, src uint64, evs []Event) {
	for i := 0; i < len(evs); {
		j := i + 1
		b := uint64(len(evs[i].Line))
		for j < len(evs) && evs[j].Seq == evs[j-1].Seq+1 {
			b += uint64(len(evs[j].Line))
			j++
		}
		x.push(seqRun{key: key, service: service, source: src, first: evs[i].Seq, count: uint32(j - i),
			bytes: b, recv: evs[i].Received.UnixNano()})
		i = j
	}
}

func (x *seqIndex) push(r seqRun) {
	if x.perKey == nil {
		x.perKey = map[string]int{}
	}
	if x.n == seqIndexMaxRuns {
		old := &x.runs[x.head]
		if x.perKey[old.key] -= int(old.count); x.perKey[old.key] <= 0 {
			delete(x.perKey, old.key)
		}
		x.head = (x.head + 1) % len(x.runs)
		x.n--
	}
	if x.n < len(x.runs) {
		x.runs[(x.head+x.n)%len(x.runs)] = r
	} else {
		nb := make([]seqRun, 0, min(max(2*len(x.runs), 64), seqIndexMaxRuns))
		for i := 0; i < x.n; i++ {
			nb = append(nb, x.runs[(x.head+i)%len(x.runs)])
		}
		nb = append(nb, r)
		x.runs, x.head = nb[:cap(nb)], 0
	}
	x.n++
	x.perKey[r.key] += int(r.count)
}

// runsOf copies the runs of one key, oldest first.
func (x *seqIndex) runsOf(key string) []seqRun {
	var l []seqRun
	for i := 0; i < x.n; i++ {
		if r := &x.runs[(x.head+i)%len(x.runs)]; r.key == key {
			l = append(l, *r)
		}
	}
	return l
}

// fileResume is the capture history one resume needs of one key: the
// index runs of the key, how many of their events are older than the
// ring, and the key's files as they were at registration.
type fileResume struct {
	key     string
	runs    []seqRun
	covered int // events of runs
	older   int // of which not in the ring (the first ones)
	snap    fileSnap
}

// planFilesLocked finds the keys whose files hold events after the cursors
// that the ring no longer has, and snapshots their files. One pass over
// the index decides; only the runs of the keys needed are copied.
func (s *hubSub) planFilesLocked(cur map[uint64]uint64, inRing map[string]int) []fileResume {
	c := s.h.capt
	x := &c.seqs
	seen := map[string]int{} // per key: events walked
	need := map[string]bool{}
	for i := 0; i < x.n; i++ {
		r := &x.runs[(x.head+i)%len(x.runs)]
		k := seen[r.key]
		seen[r.key] = k + int(r.count)
		older := x.perKey[r.key] - inRing[r.key]
		if need[r.key] || k >= older {
			continue
		}
		n := min(int(r.count), older-k)
		if r.first+uint64(n)-1 > cur[r.source] && s.filter.matchService(r.service) {
			need[r.key] = true
		}
	}
	if len(need) == 0 {
		return nil
	}
	var plans []fileResume
	var keys []string
	for key := range need {
		covered := x.perKey[key]
		plans = append(plans, fileResume{key: key, runs: x.runsOf(key), covered: covered, older: covered - inRing[key]})
		keys = append(keys, key)
	}
	snaps := c.snapshot(&Filter{Services: keys}, nil)
	out := plans[:0]
	for _, p := range plans {
		for i := range snaps {
			if snaps[i].key == p.key && snaps[i].files != nil {
				p.snap, snaps[i].files = snaps[i], nil
				out = append(out, p)
			}
		}
	}
	for i := range snaps {
		snaps[i].close()
	}
	return out
}

// eachLine calls fn for every whole line of the snapshot's files, from
// their start.
func (f *fileSnap) eachLine(fn func(line []byte) bool) {
	for j, file := range f.files {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			continue
		}
		var r io.Reader = file
		gz := strings.HasSuffix(file.Name(), ".gz")
		if gz {
			zr, err := gzip.NewReader(file)
			if err != nil {
				continue // a damaged archive: its lines are not counted (alignment is checked)
			}
			r = zr
		}
		if j == len(f.files)-1 && f.limit >= 0 && !gz && filepath.Base(file.Name()) == f.key+".log" {
			r = io.LimitReader(r, f.limit)
		}
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, _, err := readLine(br)
			if len(line) > 0 && !fn(line) {
				return
			}
			if err != nil {
				break
			}
		}
	}
}

// sendFiles sends, oldest first, the events of the planned files that
// follow the cursors and are older than the ring, with their sequences.
func (s *hubSub) sendFiles() error {
	rs := s.resume
	defer func() {
		for i := range rs.files {
			rs.files[i].snap.close()
		}
	}()
	for i := range rs.files {
		if err := s.sendFile(&rs.files[i]); err != nil {
			return err
		}
	}
	return nil
}

// sendFile reads the key's files three times: to count their lines (the
// last p.covered are the runs' events), to check every run's bytes, and,
// only if all match, to send the events after the cursors.
func (s *hubSub) sendFile(p *fileResume) error {
	total := 0
	p.snap.eachLine(func([]byte) bool { total++; return true })
	if broken, _ := s.walkFile(p, total, false); broken != "" {
		s.h.log.Warn().Str("key", p.key).Str("mismatch", broken).Msg("capture files do not match the sequence index; resume without their history")
		return nil
	}
	_, err := s.walkFile(p, total, true)
	return err
}

// walkFile maps the lines of the files to the runs, checking each run's
// bytes, and with send, sends the matching events older than the ring.
func (s *hubSub) walkFile(p *fileResume, total int, send bool) (broken string, sendErr error) {
	// Line i of the files is event i-skip of the runs.
	skip := total - p.covered
	var (
		batch   []qent
		run     int    // current run
		off     uint32 // events of the run seen
		k       int    // event index in runs of the current run's first
		pending [][]byte
		size    uint64
	)
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case <-s.stopCh:
			sendErr = ErrClosed
			return false
		default:
		}
		if sendErr = s.out.send(batch); sendErr != nil {
			return false
		}
		batch = batch[:0]
		return true
	}
	// The first whole run with lines in the files (older files may have
	// been pruned, cutting a run).
	for run < len(p.runs) && k < -skip {
		k += int(p.runs[run].count)
		run++
	}
	li := 0
	p.snap.eachLine(func(line []byte) bool {
		ev := li - skip
		li++
		if ev < k {
			return true
		}
		if run >= len(p.runs) || (ev >= p.older && off == 0) {
			return false // the rest is in the ring
		}
		r := &p.runs[run]
		if send {
			pending = append(pending, line)
		}
		size += uint64(len(line))
		off++
		if off < r.count {
			return true
		}
		if size != r.bytes {
			broken = fmt.Sprintf("run %d of source %d: %d bytes in the files, %d captured", run, r.source, size, r.bytes)
			return false
		}
		for j, l := range pending {
			if k+j >= p.older {
				break
			}
			e := &Event{Node: s.h.cfg.Node, Service: r.service, Source: r.source, Seq: r.first + uint64(j),
				Received: time.Unix(0, r.recv), Level: levelOf(l), History: true, Line: l}
			if e.Seq > s.resume.cur[e.Source] && s.match(e) {
				batch = append(batch, qent{ev: e, hist: true})
			}
		}
		k += int(r.count)
		run, off, pending, size = run+1, 0, nil, 0
		if len(batch) >= 1024 {
			return flush()
		}
		return true
	})
	if broken != "" || sendErr != nil {
		return broken, sendErr
	}
	flush()
	return "", sendErr
}
