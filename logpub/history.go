package logpub

import (
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// fileSnap is the capture history of one capture file key at the moment a
// query registered: its rotated files and current file, already open (so
// later rotations and compressions do not disturb the read), and how many
// of its last lines are in the ring (sent from there instead).
type fileSnap struct {
	key   string
	files []*os.File
	limit int64 // bytes of the last (current) file to read
	skip  int
}

func (f *fileSnap) close() {
	for _, x := range f.files {
		x.Close()
	}
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
		snap := fileSnap{key: k, skip: inRing[k]}
		_, all := c.backups(k)
		for _, p := range all {
			f, err := os.Open(p)
			if errors.Is(err, fs.ErrNotExist) && !strings.HasSuffix(p, ".gz") {
				// Compressed since it was listed: the archive was renamed
				// into place before the plain file was removed.
				f, err = os.Open(p + ".gz")
			}
			if err == nil {
				snap.files = append(snap.files, f)
			}
		}
		cur := filepath.Join(c.cfg.Dir, k+".log")
		if f, err := os.Open(cur); err == nil {
			snap.files = append(snap.files, f)
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

// readHistory streams the lines of the snapshots that are older than the
// ring, match the filter and are at or after since, in batches to emit.
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
		fifo := make([][]byte, 0, min(fs.skip, 4096))
		head := 0
		consider := func(line []byte) error {
			lvl := levelOf(line)
			if !flt.matchLevel(lvl) {
				return nil
			}
			t, ok := timeOf(line)
			if ok && t.Before(since) {
				return nil
			}
			batch = append(batch, qent{hist: true, ev: &Event{Node: node, Service: fs.key, Level: lvl, Received: t, History: true, Line: line}})
			if len(batch) >= 1024 {
				return flush()
			}
			return nil
		}
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
			for {
				line, err := readLine(br)
				if len(line) > 0 {
					if fs.skip == 0 {
						if err := consider(line); err != nil {
							return err
						}
					} else if len(fifo) < fs.skip {
						fifo = append(fifo, line)
					} else {
						old := fifo[head]
						fifo[head] = line
						head = (head + 1) % fs.skip
						if err := consider(old); err != nil {
							return err
						}
					}
				}
				if err != nil {
					break
				}
			}
		}
	}
	return flush()
}

// readLine returns one whole line (with its newline) as a fresh slice;
// lines over MaxLine are skipped.
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(frag) > MaxLine {
				for err == bufio.ErrBufferFull {
					_, err = br.ReadSlice('\n')
				}
				if err != nil {
					return nil, err
				}
				long = nil
				continue
			}
			long = append(long, frag...)
			continue
		}
		if err != nil {
			return nil, err // a partial last line is not an event
		}
		line := make([]byte, 0, len(long)+len(frag))
		line = append(append(line, long...), frag...)
		return line, nil
	}
}
