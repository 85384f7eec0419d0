package logpub

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/google/uuid"
)

// fileSnap is the capture history of one capture file key at the moment a
// query registered: its rotated files and current file, and their indexes,
// already open (so later rotations and compressions do not disturb the
// read), and how many of its last lines are in the ring (sent from there
// instead).
type fileSnap struct {
	key    string
	shared bool // the key is a shared file: only the index knows services
	files  []*os.File
	idx    []*os.File // beside files; nil where a file has no index
	limit  int64      // bytes of the last (current) file to read
	skip   int
}

func (f *fileSnap) close() {
	for i, x := range f.files {
		x.Close()
		if f.idx[i] != nil {
			f.idx[i].Close()
		}
	}
}

// add appends an open capture file and its index, if it has one.
func (f *fileSnap) add(file *os.File) {
	f.files = append(f.files, file)
	x, err := os.Open(idxPath(file.Name()))
	if err != nil {
		x = nil
	}
	f.idx = append(f.idx, x)
}

// snapshot opens the capture files of every key the filter may match.
func (c *capture) snapshot(flt *Filter, inRing map[string]int) []fileSnap {
	keys := map[string]bool{}
	for k := range c.files {
		keys[k] = true
	}
	if ents, err := os.ReadDir(c.cfg.Dir); err == nil {
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || strings.HasPrefix(n, ".") {
				continue
			}
			base := strings.TrimSuffix(n, ".gz")
			if !strings.HasSuffix(base, ".log") {
				continue
			}
			if isBackupName(base, "") {
				keys[keyOfBackup(base)] = true
			} else if n == base {
				keys[strings.TrimSuffix(n, ".log")] = true
			}
		}
	}
	var snaps []fileSnap
	for k := range keys {
		if c.cfg.Shared == "" && !flt.matchService(k) {
			continue
		}
		if c.cfg.Shared != "" && k != c.cfg.Shared {
			continue
		}
		snap := fileSnap{key: k, shared: c.cfg.Shared != "", skip: inRing[k]}
		_, all := c.backups(k)
		for _, p := range all {
			f, err := os.Open(p)
			if errors.Is(err, fs.ErrNotExist) && !strings.HasSuffix(p, ".gz") {
				// Compressed since it was listed: the archive was renamed
				// into place before the plain file was removed.
				f, err = os.Open(p + ".gz")
			}
			if err == nil {
				snap.add(f)
			}
		}
		cur := filepath.Join(c.cfg.Dir, k+".log")
		if f, err := os.Open(cur); err == nil {
			snap.add(f)
			if cf := c.files[k]; cf != nil {
				snap.limit = cf.size
			} else if fi, err := f.Stat(); err == nil {
				snap.limit = fi.Size()
			}
		} else {
			snap.limit = -1
		}
		snaps = append(snaps, snap)
	}
	return snaps
}

// histLine is one capture file line on its way to a query, with what is
// known of it.
type histLine struct {
	line    []byte
	service string    // "" if unknown (an unindexed line of a shared file)
	recv    time.Time // zero if unknown
	inSince bool      // at or after the query's since
}

// readHistory streams the lines of the snapshots that are older than the
// ring, match the filter and are at or after since, in batches to emit.
//
// Indexed lines (see capindex.go) have their service and exact receive
// time. Unindexed lines (written before indexes, or whose record was lost
// in a crash) have the key's service, none in a shared file (so they pass
// no service filter), and zerolog's "time" field as receive time, at its
// precision (a line stamped 10:00:00 is taken as possibly any time in that
// second, so it is kept for a since within it); one without a time field
// is kept when a line before it was at or after since.
func readHistory(snaps []fileSnap, since time.Time, flt *Filter, node uuid.UUID, emit func([]qent) error) error {
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

// readLine returns one whole line (with its newline) as a fresh slice, and
// how many bytes it took from br; a line over MaxLine is skipped (nil
// line, its bytes counted).
func readLine(br *bufio.Reader) ([]byte, int, error) {
	var long []byte
	n, skipping := 0, false
	for {
		frag, err := br.ReadSlice('\n')
		n += len(frag)
		if err == bufio.ErrBufferFull {
			if !skipping && len(long)+len(frag) > MaxLine {
				skipping, long = true, nil
			}
			if !skipping {
				long = append(long, frag...)
			}
			continue
		}
		if err != nil {
			return nil, n, err // a partial last line is not an event
		}
		if skipping {
			return nil, n, nil
		}
		line := make([]byte, 0, len(long)+len(frag))
		line = append(append(line, long...), frag...)
		return line, n, nil
	}
}
