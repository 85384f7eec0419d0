package logpub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/rs/zerolog"
	"gopkg.in/natefinch/lumberjack.v2"
)

// CaptureConfig says where and how the Hub captures events to files.
type CaptureConfig struct {
	// Dir holds the capture files; empty disables capture.
	Dir string
	// Shared, if set, captures every service into one file <Shared>.log
	// instead of one file per service (<service>.log). The lines stay
	// zerolog's; the service of each is kept in the file's index (see
	// capindex.go), so history is still filtered by service.
	Shared string
	// MaxSize rotates a file before it grows beyond this many bytes.
	// Default 100 MiB.
	MaxSize int64
	// RotateEvery also rotates on wall-clock boundaries (multiples of it
	// since the epoch, e.g. every full hour); 0 disables time rotation.
	RotateEvery time.Duration
	// MaxBackups is the most rotated files kept per capture file (0 = all).
	MaxBackups int
	// MaxAge removes rotated files older than this many days (0 = never).
	MaxAge int
	// NoCompress keeps rotated files plain instead of gzip-compressing them.
	NoCompress bool
	// OnArchive is called, from a goroutine of the Hub, for every completed
	// archive (the rotated file once compressed, or as is with NoCompress).
	OnArchive func(path, service string)
}

// capFile is one capture file and its lumberjack logger.
type capFile struct {
	key        string
	lj         *lumberjack.Logger
	size       int64
	lastRotate time.Time
	idx        capIndex // service and receive time of its lines
	idxFailed  bool     // an index write failed (logged once until one succeeds)
}

// capture writes captured events to files and rotates them. Its methods
// except the compressor run under the Hub's lock.
type capture struct {
	cfg   CaptureConfig
	log   zerolog.Logger
	files map[string]*capFile

	jobs    chan string // plain rotated files to compress or announce
	pending map[string]bool
	pmu     sync.Mutex
	wg      sync.WaitGroup

	seqs seqIndex // which (source, seq) the last lines of each file are
}

func newCapture(cfg CaptureConfig, log zerolog.Logger) (*capture, error) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 100 << 20
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("logpub: capture dir: %w", err)
	}
	c := &capture{cfg: cfg, log: log, files: map[string]*capFile{}, jobs: make(chan string, 1024), pending: map[string]bool{}}
	c.wg.Add(1)
	go c.compressor()
	// Rotated files left plain by an earlier run (killed mid-compression)
	// are finished now.
	c.enqueueBackups("")
	return c, nil
}

// keyFor returns the capture file key of a service.
func (c *capture) keyFor(service string) string {
	if c.cfg.Shared != "" {
		return c.cfg.Shared
	}
	return service
}

func (c *capture) file(key string) *capFile {
	f := c.files[key]
	if f != nil {
		return f
	}
	name := filepath.Join(c.cfg.Dir, key+".log")
	f = &capFile{key: key, lj: &lumberjack.Logger{
		Filename: name,
		// lumberjack never rotates by itself: size and time rotation are
		// driven here so that every rotation is known and announced. Nor
		// does it prune: its pruning runs beside our compression and could
		// be undone by it, so the compressor prunes after each archive.
		MaxSize: 1 << 30,
	}}
	if fi, err := os.Stat(name); err == nil {
		f.size = c.cutTornTail(name, fi.Size())
	}
	c.openIndex(f)
	c.files[key] = f
	return f
}

// cutTornTail removes a partial last line (a hub killed mid-write) from a
// capture file about to be appended to, so that the next event does not
// glue onto it; the partial line was never acknowledged, its writer sends
// it again. It returns the file's size.
func (c *capture) cutTornTail(name string, size int64) int64 {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return size
	}
	defer f.Close()
	var buf [64 << 10]byte
	end := size
	for end > 0 {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return size
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return size
	}
	if err := f.Truncate(end); err != nil {
		c.log.Error().Err(err).Str("file", name).Msg("cannot cut a partial last line")
		return size
	}
	c.log.Warn().Str("file", name).Int64("bytes", size-end).Msg("cut a partial last line left by an interrupted write")
	return end
}

// openIndex opens the index of f's current file; without one its lines
// are captured unindexed.
func (c *capture) openIndex(f *capFile) {
	x, size, err := openIndex(f.lj.Filename, f.size)
	if err != nil {
		c.log.Error().Err(err).Msg("capture index unavailable; history of these lines is at the second, by the apps' clocks")
		return
	}
	f.idx = capIndex{f: x, size: size}
}

// write appends lines (whole events) of one service, the first received at
// recv (unix ns, the next ones 1 ns apart), rotating between events so
// that no file grows beyond MaxSize (unless one event does).
func (c *capture) write(service string, p []byte, recv int64) error {
	f := c.file(c.keyFor(service))
	for len(p) > 0 {
		room := c.cfg.MaxSize - f.size
		if int64(len(p)) <= room {
			return c.writeIndexed(f, p, service, recv)
		}
		cut := 0
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1
		}
		if cut == 0 && f.size == 0 {
			// A single event larger than MaxSize gets a file of its own.
			cut = bytes.IndexByte(p, '\n') + 1
			if cut == 0 {
				cut = len(p)
			}
		}
		if cut > 0 {
			if err := c.writeIndexed(f, p[:cut], service, recv); err != nil {
				return err
			}
			recv += int64(countLines(p[:cut]))
			p = p[cut:]
		}
		if len(p) > 0 {
			if err := c.rotate(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeIndexed writes p to f, then its index record. A failed index write
// does not fail the capture: the lines are in the file, only unindexed.
func (c *capture) writeIndexed(f *capFile, p []byte, service string, recv int64) error {
	off := f.size
	if err := c.writeFile(f, p); err != nil {
		return err
	}
	if err := f.idx.add(off, p, service, recv); err != nil {
		if !f.idxFailed {
			c.log.Error().Err(err).Msg("capture index write failed; these lines stay unindexed")
		}
		f.idxFailed = true
	} else {
		f.idxFailed = false
	}
	return nil
}

// writeFile appends p to f whole or not at all: a write that fails half
// way (a full disk) is cut back off, because the events are not
// acknowledged and will come again, and a fragment would tear the next
// line. lumberjack's file is then closed, so that its next write reopens
// it in append mode at the cut (it may have opened it without O_APPEND).
func (c *capture) writeFile(f *capFile, p []byte) error {
	n, err := f.lj.Write(p)
	if err == nil {
		f.size += int64(n)
		return nil
	}
	err = fmt.Errorf("logpub: capture %s: %w", f.lj.Filename, err)
	if n > 0 {
		if terr := os.Truncate(f.lj.Filename, f.size); terr != nil {
			f.size += int64(n)
			return errors.Join(err, fmt.Errorf("logpub: cut back the partial write: %w", terr))
		}
		_ = f.lj.Close()
	}
	return err
}

func (c *capture) rotate(f *capFile) error {
	// lumberjack names backups by the millisecond: two rotations within one
	// would give the same name, the second overwriting the first.
	if d := time.Since(f.lastRotate); d < 2*time.Millisecond {
		time.Sleep(2*time.Millisecond - d)
	}
	_, before := c.backups(f.key)
	f.idx.close()
	err := f.lj.Rotate()
	c.moveIndex(f, before)
	if err != nil {
		c.openIndex(f)
		return fmt.Errorf("logpub: rotate %s: %w", f.lj.Filename, err)
	}
	f.size = 0
	f.lastRotate = time.Now()
	c.openIndex(f)
	c.enqueueBackups(f.key)
	return nil
}

// moveIndex gives the index of f's current file to the rotated file
// lumberjack just made of it (the backup not there before), or removes
// it if there is none.
func (c *capture) moveIndex(f *capFile, before []string) {
	cur := idxPath(f.lj.Filename)
	_, after := c.backups(f.key)
	plain := func(p string) string { return strings.TrimSuffix(p, ".gz") }
	for _, p := range after {
		if !slices.ContainsFunc(before, func(b string) bool { return plain(b) == plain(p) }) {
			if err := os.Rename(cur, idxPath(p)); err != nil && !os.IsNotExist(err) {
				c.log.Error().Err(err).Str("file", p).Msg("capture index of a rotated file lost")
			}
			return
		}
	}
	if _, err := os.Stat(f.lj.Filename); os.IsNotExist(err) {
		os.Remove(cur)
	}
}

// rotateAll rotates every non-empty capture file (time rotation).
func (c *capture) rotateAll() {
	for _, f := range c.files {
		if f.size == 0 {
			continue
		}
		if err := c.rotate(f); err != nil {
			c.log.Error().Err(err).Msg("time rotation failed")
		}
	}
}

// backups lists the rotated files of key ("" = all keys), plain and
// compressed, oldest first; a plain file shadows its compressed twin.
func (c *capture) backups(key string) (plain []string, all []string) {
	ents, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return nil, nil
	}
	seen := map[string]bool{}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		base := strings.TrimSuffix(n, ".gz")
		if !strings.HasSuffix(base, ".log") || !isBackupName(base, key) {
			continue
		}
		if base == n {
			plain = append(plain, filepath.Join(c.cfg.Dir, n))
		}
		if !seen[base] {
			seen[base] = true
			names = append(names, n)
		}
	}
	// Keep the plain one when both exist (compression not finished).
	sort.Strings(names)
	for _, n := range names {
		base := strings.TrimSuffix(n, ".gz")
		if n != base {
			if _, err := os.Stat(filepath.Join(c.cfg.Dir, base)); err == nil {
				n = base
			}
		}
		all = append(all, filepath.Join(c.cfg.Dir, n))
	}
	return plain, all
}

// isBackupName reports whether name (without .gz) is a rotated file of key:
// <key>-2006-01-02T15-04-05.000.log.
func isBackupName(name, key string) bool {
	const stamp = len("2006-01-02T15-04-05.000")
	rest := strings.TrimSuffix(name, ".log")
	if len(rest) < stamp+2 || rest[len(rest)-stamp-1] != '-' {
		return false
	}
	if _, err := time.Parse("2006-01-02T15-04-05.000", rest[len(rest)-stamp:]); err != nil {
		return false
	}
	return key == "" || rest[:len(rest)-stamp-1] == key
}

func keyOfBackup(path string) string {
	const stamp = len("-2006-01-02T15-04-05.000.log")
	n := strings.TrimSuffix(filepath.Base(path), ".gz")
	if len(n) < stamp {
		return ""
	}
	return n[:len(n)-stamp]
}

func (c *capture) enqueueBackups(key string) {
	plain, _ := c.backups(key)
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for _, p := range plain {
		if c.pending[p] {
			continue
		}
		select {
		case c.jobs <- p:
			c.pending[p] = true
		default:
			c.log.Warn().Str("file", p).Msg("compression queue full; file stays plain until restart")
		}
	}
}

// compressor gzips rotated files atomically and announces the archives.
func (c *capture) compressor() {
	defer c.wg.Done()
	for p := range c.jobs {
		out := p
		var err error
		if !c.cfg.NoCompress {
			out, err = compressFile(p)
		}
		c.pmu.Lock()
		delete(c.pending, p)
		c.pmu.Unlock()
		if err != nil {
			if !os.IsNotExist(err) {
				c.log.Error().Err(err).Str("file", p).Msg("compress rotated capture")
			}
			continue
		}
		c.prune(keyOfBackup(p))
		if _, err := os.Stat(out); err == nil && c.cfg.OnArchive != nil {
			c.cfg.OnArchive(out, keyOfBackup(out))
		}
	}
}

// prune removes the rotated files of key beyond MaxBackups (oldest first)
// and those older than MaxAge days, by the time in their names.
func (c *capture) prune(key string) {
	if c.cfg.MaxBackups <= 0 && c.cfg.MaxAge <= 0 {
		return
	}
	_, all := c.backups(key)
	cutoff := time.Now().Add(-time.Duration(c.cfg.MaxAge) * 24 * time.Hour)
	for i, p := range all {
		old := c.cfg.MaxBackups > 0 && len(all)-i > c.cfg.MaxBackups
		if !old && c.cfg.MaxAge > 0 {
			base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p), ".gz"), ".log")
			if t, err := time.Parse("2006-01-02T15-04-05.000", base[len(base)-len("2006-01-02T15-04-05.000"):]); err == nil && t.Before(cutoff) {
				old = true
			}
		}
		if old {
			os.Remove(idxPath(p))
			os.Remove(p)
			os.Remove(strings.TrimSuffix(p, ".gz") + ".gz") // the twin, if both exist
			os.Remove(strings.TrimSuffix(p, ".gz"))
		}
	}
}

// compressFile writes src.gz through a temporary name and a rename, so that
// no reader ever sees a partial archive, then removes src.
func compressFile(src string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst := src + ".gz"
	tmp := filepath.Join(filepath.Dir(src), "."+filepath.Base(dst)+".tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return "", fmt.Errorf("logpub: compress %s: %w", src, err)
	}
	// BestSpeed: a third of the CPU of the default level for logs, which
	// compress well anyway; the compressor shares the cores with the hub.
	// klauspost/compress rather than compress/gzip: the same gzip format
	// (zcat and compress/gzip read it) at 1.7x the speed on capture files
	// (450 vs 260 MB/s, ratio 9.7 vs 10.4), and it reads 1.5x faster
	// (history, resume, Harmony sources); compression was 18% of the hub's
	// CPU under full load.
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	_, err = io.Copy(zw, in)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("logpub: compress %s: %w", src, err)
	}
	os.Remove(src)
	return dst, nil
}

// close closes the files and stops the compressor after it finished the
// queued work.
func (c *capture) close() error {
	var first error
	for _, f := range c.files {
		if err := f.lj.Close(); err != nil && first == nil {
			first = err
		}
		f.idx.close()
	}
	close(c.jobs)
	c.wg.Wait()
	return first
}
