package logpub

import (
	"bufio"
	"cmp"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"
)

// History from capture files, in receive-time order. Each capture file key
// (one per service by default) holds its lines in the order the Hub
// stamped them, so each key is an ordered stream; readHistory merges the
// streams (a k-way merge on a heap, one line read ahead per key) so that a
// node's history is in receive-time order across its files, as logtail's
// merge of several nodes expects. The ring follows: it holds exactly the
// latest events, all received after every file line sent.
//
// Merge order. An indexed line (capindex.go) is ordered by its exact
// receive time. An unindexed line (written before indexes existed, or
// whose record a crash lost) has none: it is ordered by zerolog's "time"
// field, but never before the line that precedes it in its file (the
// later of the two times); a line without a time field takes the order of
// the line before it. So lines keep their file order within a key, and
// old files of several services interleave by the app's clock, at the
// precision of its time field (zerolog's default is the second, so such a
// line can come before another key's lines of the same second).

// histLine is one capture file line on its way to a query, with what is
// known of it.
type histLine struct {
	line    []byte
	service string        // "" if unknown (an unindexed line of a shared file)
	recv    time.Time     // zero if unknown
	order   int64         // merge key, unix ns (see above)
	level   zerolog.Level // zerolog's level of the line
	inSince bool          // at or after the query's since
}

// histStream reads the lines of one key's snapshot in file order, holds
// back its last skip lines (the ring has them) and drops those the query
// does not want, with one wanted line ready in cur.
type histStream struct {
	fs    *fileSnap
	since time.Time
	flt   *Filter
	rank  int // position in the merge, breaks ties of equal order

	nextFile    int           // the next file of fs to open
	reading     bool          // br reads an open file
	br          *bufio.Reader // reused from file to file
	ix          *idxReader
	off         int64 // of the next line in the open file
	order       int64 // merge key of the last line read
	lastInSince bool  // the latest line with a known time was at or after since

	fifo []histLine // the last lines read, up to fs.skip
	head int

	cur histLine
}

// open opens the next file of the snapshot; false when there is none.
func (s *histStream) open() bool {
	for s.nextFile < len(s.fs.files) {
		j := s.nextFile
		s.nextFile++
		f := s.fs.files[j]
		var r io.Reader = f
		gz := strings.HasSuffix(f.Name(), ".gz")
		if gz {
			zr, err := gzip.NewReader(f)
			if err != nil {
				continue // a damaged archive: skip it, keep serving
			}
			r = zr
		}
		if j == len(s.fs.files)-1 && s.fs.limit >= 0 && !gz && filepath.Base(f.Name()) == s.fs.key+".log" {
			r = io.LimitReader(r, s.fs.limit)
		}
		if s.br == nil {
			s.br = bufio.NewReaderSize(r, 64<<10)
		} else {
			s.br.Reset(r)
		}
		var ixr io.Reader
		if s.fs.idx[j] != nil {
			ixr = s.fs.idx[j]
		}
		s.ix, s.off, s.reading = newIdxReader(ixr), 0, true
		return true
	}
	return false
}

// raw returns the next line of the key in file order, with its service,
// receive time, merge order and whether it is within since.
func (s *histStream) raw() (histLine, bool) {
	for {
		if !s.reading && !s.open() {
			return histLine{}, false
		}
		line, n, err := readLine(s.br)
		off := s.off
		s.off += int64(n)
		if err != nil {
			s.reading = false // the next call opens the next file
		}
		if len(line) == 0 {
			continue
		}
		hl := histLine{line: line}
		if svc, recv, ok := s.ix.lookup(off); ok {
			hl.service, hl.recv = svc, time.Unix(0, recv)
			hl.inSince = !hl.recv.Before(s.since)
			s.lastInSince = hl.inSince
			s.order = recv
		} else {
			if !s.fs.shared {
				hl.service = s.fs.key
			}
			if t, res, ok := lineTime(line); ok {
				hl.recv, hl.inSince = t, t.Add(res).After(s.since)
				s.lastInSince = hl.inSince
				s.order = max(s.order, t.UnixNano())
			} else {
				hl.inSince = s.lastInSince
			}
		}
		hl.order = s.order
		return hl, true
	}
}

// advance makes the next wanted line of the key cur; false at its end.
func (s *histStream) advance() bool {
	for {
		hl, ok := s.raw()
		if !ok {
			return false // what the fifo holds is in the ring
		}
		if k := s.fs.skip; k > 0 {
			if len(s.fifo) < k {
				s.fifo = append(s.fifo, hl)
				continue
			}
			hl, s.fifo[s.head] = s.fifo[s.head], hl
			s.head = (s.head + 1) % k
		}
		hl.level = levelOf(hl.line)
		if !hl.inSince || !s.flt.matchLevel(hl.level) || (len(s.flt.Services) > 0 && (hl.service == "" || !s.flt.matchService(hl.service))) {
			continue
		}
		s.cur = hl
		return true
	}
}

// before orders streams by their current line.
func (s *histStream) before(o *histStream) bool {
	if s.cur.order != o.cur.order {
		return s.cur.order < o.cur.order
	}
	return s.rank < o.rank
}

// readHistory streams, in batches to emit and in receive-time order (see
// above), the lines of the snapshots that are older than the ring, match
// the filter and are at or after since.
//
// Indexed lines have their service and exact receive time. Unindexed lines
// have the key's service, none in a shared file (so they pass no service
// filter), and zerolog's "time" field as receive time, at its precision (a
// line stamped 10:00:00 is taken as possibly any time in that second, so
// it is kept for a since within it); one without a time field is kept when
// a line before it was at or after since.
//
// Memory is bounded by the number of keys: per key, one open file with
// its read buffer and the lines held back for the ring.
func readHistory(snaps []fileSnap, since time.Time, flt *Filter, node uuid.UUID, emit func([]qent) error) error {
	slices.SortFunc(snaps, func(a, b fileSnap) int { return cmp.Compare(a.key, b.key) })
	heap := make([]*histStream, 0, len(snaps))
	for i := range snaps {
		s := &histStream{fs: &snaps[i], since: since, flt: flt, rank: i}
		s.fifo = make([]histLine, 0, min(s.fs.skip, 4096))
		if s.advance() {
			heap = append(heap, s)
		}
	}
	for i := len(heap)/2 - 1; i >= 0; i-- {
		siftDown(heap, i)
	}
	// emit keeps neither the batch nor its events (it copies them out),
	// so both are reused.
	batch := make([]qent, 0, 1024)
	evs := make([]Event, 1024)
	for len(heap) > 0 {
		s := heap[0]
		hl := &s.cur
		e := &evs[len(batch)]
		*e = Event{Node: node, Service: hl.service, Level: hl.level, Received: hl.recv, History: true, Line: hl.line}
		batch = append(batch, qent{hist: true, ev: e})
		if len(batch) == cap(batch) {
			if err := emit(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if !s.advance() {
			last := len(heap) - 1
			heap[0], heap[last] = heap[last], nil
			heap = heap[:last]
		}
		siftDown(heap, 0)
	}
	if len(batch) == 0 {
		return nil
	}
	return emit(batch)
}

// siftDown restores the heap order below i (a min-heap on before).
func siftDown(h []*histStream, i int) {
	for {
		m, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].before(h[m]) {
			m = l
		}
		if r < len(h) && h[r].before(h[m]) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
