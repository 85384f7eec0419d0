package logpub

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
