package logpub

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Capture index. A capture file holds zerolog's lines byte-identical, so it
// cannot say which service wrote a line of a shared file (--capture-shared)
// nor when the hub received it (zerolog's "time" field is the app's clock,
// at the second by default). Beside each capture file <name>.log, current
// or rotated, plain or gzip, the hub keeps .<name>.log.idx: for every run
// of lines it wrote at once, their byte range in the plain file, their
// count, their service and the receive time of the first. The hub stamps
// every event with a unique, strictly increasing receive time (line k of a
// run has the first's time + k ns), so history from files is exact to the
// nanosecond and joins the ring's without loss or repeat.
//
//	file   = magic "LPIX" version[1] record*
//	record = off[8] len[4] count[4] recv[8] service[str8]   (big-endian)
//
// The log is written first and its record after, so a crash between the
// two leaves lines without a record (read as unindexed), never a record
// without its lines; records carry their offset, so a missing one shifts
// nothing. Hidden files are neither archives nor shipped.
const (
	idxMagic     = "LPIX\x01"
	idxRecFixed  = 8 + 4 + 4 + 8 + 1
	idxRecMaxLen = MaxFrame // a run is at most one batch
)

// idxRecord is one run of lines of one service.
type idxRecord struct {
	off, n, count int64
	recv          int64 // unix ns of the first line; line k has recv+k
	service       string
}

// idxPath returns the index of a capture file (plain or .gz).
func idxPath(logPath string) string {
	base := strings.TrimSuffix(filepath.Base(logPath), ".gz")
	return filepath.Join(filepath.Dir(logPath), "."+base+".idx")
}

func appendIdxRecord(b []byte, r idxRecord) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(r.off))
	b = binary.BigEndian.AppendUint32(b, uint32(r.n))
	b = binary.BigEndian.AppendUint32(b, uint32(r.count))
	b = binary.BigEndian.AppendUint64(b, uint64(r.recv))
	return appendStr8(b, r.service)
}

// errIdxEnd ends an index cleanly (no more whole records).
var errIdxEnd = errors.New("logpub: end of capture index")

// decodeIdxRecord decodes the record at the start of b and returns its
// size; errIdxEnd when b holds no whole record, ErrFrame when it is not a
// valid one (then the rest of the index is not trusted).
func decodeIdxRecord(b []byte, prevEnd int64) (idxRecord, int, error) {
	if len(b) < idxRecFixed {
		return idxRecord{}, 0, errIdxEnd
	}
	r := idxRecord{
		off:   int64(binary.BigEndian.Uint64(b)),
		n:     int64(binary.BigEndian.Uint32(b[8:])),
		count: int64(binary.BigEndian.Uint32(b[12:])),
		recv:  int64(binary.BigEndian.Uint64(b[16:])),
	}
	sl := int(b[24])
	if len(b) < idxRecFixed+sl {
		return idxRecord{}, 0, errIdxEnd
	}
	r.service = string(b[idxRecFixed : idxRecFixed+sl])
	switch {
	case r.off < prevEnd || r.off > 1<<50:
		return idxRecord{}, 0, frameErr("capture index: record at offset %d before the previous end %d", r.off, prevEnd)
	case r.n <= 0 || r.n > idxRecMaxLen || r.count <= 0 || r.count > r.n:
		return idxRecord{}, 0, frameErr("capture index: record of %d bytes, %d lines", r.n, r.count)
	case r.recv <= 0:
		return idxRecord{}, 0, frameErr("capture index: receive time %d", r.recv)
	}
	if err := checkService(r.service); err != nil {
		return idxRecord{}, 0, fmt.Errorf("capture index: %w", err)
	}
	return r, idxRecFixed + sl, nil
}

// idxReader walks an index beside the lines of its capture file.
type idxReader struct {
	br      *bufio.Reader
	cur     idxRecord
	have    bool
	line    int64 // lines of cur already looked up
	prevEnd int64
	done    bool
}

// newIdxReader reads an index from f; nil is an absent index.
func newIdxReader(f io.Reader) *idxReader {
	r := &idxReader{done: f == nil}
	if f != nil {
		r.br = bufio.NewReaderSize(f, 32<<10)
		var m [len(idxMagic)]byte
		if _, err := io.ReadFull(r.br, m[:]); err != nil || string(m[:]) != idxMagic {
			r.done = true
		}
	}
	return r
}

// next reads the next record; at the end or on a bad record the index is
// done and later lines are unindexed.
func (r *idxReader) next() {
	r.have, r.line = false, 0
	if r.done {
		return
	}
	hdr, err := r.br.Peek(idxRecFixed)
	if err != nil {
		r.done = true
		return
	}
	b, err := r.br.Peek(idxRecFixed + int(hdr[24]))
	if err != nil {
		r.done = true
		return
	}
	rec, n, err := decodeIdxRecord(b, r.prevEnd)
	if err != nil {
		r.done = true
		return
	}
	r.br.Discard(n)
	r.cur, r.have, r.prevEnd = rec, true, rec.off+rec.n
}

// lookup returns the service and receive time of the line at byte offset
// off; lines must be looked up in file order. ok is false for a line no
// record covers.
func (r *idxReader) lookup(off int64) (service string, recv int64, ok bool) {
	for !r.have || off >= r.cur.off+r.cur.n {
		r.next()
		if !r.have {
			return "", 0, false
		}
	}
	if off < r.cur.off || r.line >= r.cur.count {
		return "", 0, false
	}
	r.line++
	return r.cur.service, r.cur.recv + r.line - 1, true
}

// openIndex opens (creating it) the index of a capture file that holds
// size bytes, keeping only the records of lines it still holds: an index
// beside an emptied, replaced or truncated file is cut back.
func openIndex(logPath string, size int64) (*os.File, int64, error) {
	p := idxPath(logPath)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("logpub: capture index %s: %w", p, err)
	}
	keep := int64(0)
	if size > 0 {
		keep = validIndexPrefix(f, size)
	}
	if keep == 0 {
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt([]byte(idxMagic), 0)
		}
		keep = int64(len(idxMagic))
	} else {
		err = f.Truncate(keep)
	}
	if err == nil {
		_, err = f.Seek(keep, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("logpub: capture index %s: %w", p, err)
	}
	return f, keep, nil
}

// validIndexPrefix returns the length of the index's header and whole,
// valid records that lie within size bytes of the log; 0 if none.
func validIndexPrefix(f *os.File, size int64) int64 {
	r := newIdxReader(f)
	if r.done {
		return 0
	}
	keep := int64(len(idxMagic))
	for {
		r.next()
		if !r.have || r.cur.off+r.cur.n > size {
			return keep
		}
		keep += int64(idxRecFixed + len(r.cur.service))
	}
}

// capIndex is the index being written beside a current capture file.
type capIndex struct {
	f    *os.File
	size int64
	buf  []byte
}

// add appends the record of p, written at offset off of the log by
// service, its first line received at recv. A failed write is cut back;
// if that fails too the index is closed (later lines stay unindexed).
func (x *capIndex) add(off int64, p []byte, service string, recv int64) error {
	if x.f == nil {
		return nil
	}
	r := idxRecord{off: off, n: int64(len(p)), count: int64(countLines(p)), recv: recv, service: service}
	if r.count == 0 {
		return nil
	}
	x.buf = appendIdxRecord(x.buf[:0], r)
	n, err := x.f.Write(x.buf)
	if err == nil {
		x.size += int64(n)
		return nil
	}
	if terr := x.f.Truncate(x.size); terr != nil {
		x.close()
		return fmt.Errorf("logpub: capture index %s: %w (and cutting back: %v)", x.f.Name(), err, terr)
	}
	x.f.Seek(x.size, io.SeekStart)
	return fmt.Errorf("logpub: capture index: %w", err)
}

func (x *capIndex) close() {
	if x.f != nil {
		x.f.Close()
		x.f = nil
	}
}

func countLines(p []byte) int { return bytes.Count(p, []byte{'\n'}) }

// lineTime returns the receive time of an unindexed line (written before
// indexes existed, or whose record was lost): zerolog's "time" field, and
// how precise it is (a second for zerolog's default format).
func lineTime(line []byte) (t time.Time, res time.Duration, ok bool) {
	t, ok = timeOf(line)
	if !ok {
		return t, 0, false
	}
	switch {
	case t.Nanosecond() == 0:
		res = time.Second
	case t.Nanosecond()%int(time.Millisecond) == 0:
		res = time.Millisecond
	case t.Nanosecond()%int(time.Microsecond) == 0:
		res = time.Microsecond
	default:
		res = time.Nanosecond
	}
	return t, res, true
}

// stampLocked reserves the receive times of n events: unix nanoseconds,
// unique and strictly increasing for the Hub (the wall clock, or 1 ns
// after the last one given when the clock has not moved or went back), so
// that a receive time names one event and --since cursors are exact.
func (h *Hub) stampLocked(n int) int64 {
	t := time.Now().UnixNano()
	if t <= h.stamp {
		t = h.stamp + 1
	}
	h.stamp = t + int64(n) - 1
	return t
}

// lastRecv returns the latest receive time in the indexes of the newest
// capture files (each key's current file, or its newest rotated one when
// the current one has none), so that a restarted Hub stamps after it even
// if the clock went back; 0 if none.
func (c *capture) lastRecv() int64 {
	ents, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return 0
	}
	var last int64
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".log") || strings.HasPrefix(n, ".") || isBackupName(n, "") {
			continue
		}
		key := strings.TrimSuffix(n, ".log")
		t := indexLastRecv(filepath.Join(c.cfg.Dir, n))
		if t == 0 {
			if _, all := c.backups(key); len(all) > 0 {
				t = indexLastRecv(all[len(all)-1])
			}
		}
		last = max(last, t)
	}
	return last
}

// indexLastRecv returns the receive time of the last line recorded in the
// index of a capture file, 0 if it has none.
func indexLastRecv(logPath string) int64 {
	f, err := os.Open(idxPath(logPath))
	if err != nil {
		return 0
	}
	defer f.Close()
	r := newIdxReader(f)
	var last int64
	for {
		r.next()
		if !r.have {
			return last
		}
		last = max(last, r.cur.recv+r.cur.count-1)
	}
}
