package logpub

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/logmesh/logmesh/internal/atomicfile"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// A Collector keeps, beside each collected capture file <origin>/<service>.log
// (the JSON lines, byte-identical), an envelope journal
// <origin>/.<service>.env with one fixed-size record per line, in the same
// order: the origin's envelope of the event. The journal record is written
// before the line; at start, records whose line is not at the end of the
// capture (a crash between the two writes) are cut off, so the journal
// says exactly what was captured and the cursors rebuilt from it neither
// skip nor repeat an event.
//
//	record = node[16] source[8] seq[8] received[8, unix ns] len[4] crc32[4]
const envRecordSize = 48

// journalMaxSize is the size at which a journal is renamed to .env.1 (the
// previous .env.1 is replaced); cursors survive through the cursor file.
const journalMaxSize = 8 << 20

// collectMaxBatch bounds the events a Collector writes at once, which
// bounds what recovery may have to cut off a journal.
const collectMaxBatch = 1024

// Envelope is the origin's envelope of one collected event, as kept in the
// envelope journal beside the capture file.
type Envelope struct {
	Node     uuid.UUID // the origin logd
	Source   uint64    // the origin's source (writer instance)
	Seq      uint64    // the per-source sequence number at the origin
	Received time.Time // when the origin received it
	Len      uint32    // length of the JSON line, newline included
	CRC      uint32    // CRC-32 (IEEE) of the line, newline included
}

func appendEnvRecord(b []byte, e *Event) []byte {
	b = append(b, e.Node[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Source)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Received.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Line)))
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(e.Line))
}

// DecodeEnvelopes decodes an envelope journal. A partial last record (a
// write cut by a crash) is ignored and reported by partial.
func DecodeEnvelopes(data []byte) (envs []Envelope, partial bool) {
	n := len(data) / envRecordSize
	envs = make([]Envelope, 0, n)
	for i := 0; i < n; i++ {
		r := data[i*envRecordSize:]
		var e Envelope
		copy(e.Node[:], r[:16])
		e.Source = binary.BigEndian.Uint64(r[16:])
		e.Seq = binary.BigEndian.Uint64(r[24:])
		e.Received = time.Unix(0, int64(binary.BigEndian.Uint64(r[32:])))
		e.Len = binary.BigEndian.Uint32(r[40:])
		e.CRC = binary.BigEndian.Uint32(r[44:])
		envs = append(envs, e)
	}
	return envs, len(data)%envRecordSize != 0
}

// ReadEnvelopes reads the envelope journal of a collected service: the
// previous journal (.1) then the current one, oldest first.
func ReadEnvelopes(originDir, service string) ([]Envelope, error) {
	var all []Envelope
	p := journalPath(originDir, service)
	for _, f := range []string{p + ".1", p} {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("logpub: read envelopes: %w", err)
		}
		envs, _ := DecodeEnvelopes(b)
		all = append(all, envs...)
	}
	return all, nil
}

func journalPath(dir, service string) string { return filepath.Join(dir, "."+service+".env") }

// journal is one append-only envelope journal.
type journal struct {
	path string
	f    *os.File
	size int64
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logpub: open envelope journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logpub: envelope journal %s: %w", path, err)
	}
	j := &journal{path: path, f: f, size: fi.Size()}
	if r := j.size % envRecordSize; r != 0 {
		if err := j.truncate(j.size - r); err != nil {
			f.Close()
			return nil, err
		}
	}
	return j, nil
}

// append writes records and returns the journal size before them (for
// truncate), rotating first when the journal is full.
func (j *journal) append(b []byte) (int64, error) {
	if j.size > 0 && j.size+int64(len(b)) > journalMaxSize {
		j.f.Close()
		if err := os.Rename(j.path, j.path+".1"); err != nil {
			return 0, fmt.Errorf("logpub: rotate envelope journal: %w", err)
		}
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
		if err != nil {
			return 0, fmt.Errorf("logpub: rotate envelope journal: %w", err)
		}
		j.f, j.size = f, 0
	}
	prev := j.size
	n, err := j.f.Write(b)
	j.size += int64(n)
	if err != nil {
		_ = j.truncate(prev)
		return 0, fmt.Errorf("logpub: write envelope journal %s: %w", j.path, err)
	}
	return prev, nil
}

func (j *journal) truncate(size int64) error {
	if err := j.f.Truncate(size); err != nil {
		return fmt.Errorf("logpub: cut envelope journal %s: %w", j.path, err)
	}
	j.size = size
	return nil
}

// outDir is the capture directory of one origin name: its capture files
// (the Hub's capture machinery: rotation, compression, OnArchive) and
// envelope journals. Origins of the same name share it.
type outDir struct {
	name string
	path string

	mu       sync.Mutex
	capt     *capture
	journals map[string]*journal
	buf      []byte
}

func newOutDir(root, name string, cc CaptureConfig, log zerolog.Logger) (*outDir, error) {
	d := &outDir{name: name, path: filepath.Join(root, name), journals: map[string]*journal{}}
	cc.Dir, cc.Shared = d.path, ""
	if user := cc.OnArchive; user != nil {
		cc.OnArchive = func(path, service string) { user(path, name+"/"+service) }
	}
	c, err := newCapture(cc, log)
	if err != nil {
		return nil, err
	}
	d.capt = c
	return d, nil
}

// write captures the events of one service: journal records first, then
// the lines; a failed capture cuts the records of the events it did not
// capture back off. On error, done is how many of the first events are
// captured all the same (written before a rotation).
func (d *outDir) write(service string, evs []*Event) (done int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j := d.journals[service]
	if j == nil {
		var err error
		if j, err = openJournal(journalPath(d.path, service)); err != nil {
			return 0, err
		}
		d.journals[service] = j
	}
	d.buf = d.buf[:0]
	for _, e := range evs {
		d.buf = appendEnvRecord(d.buf, e)
	}
	prev, err := j.append(d.buf)
	if err != nil {
		return 0, err
	}
	d.buf = d.buf[:0]
	for _, e := range evs {
		d.buf = append(d.buf, e.Line...)
	}
	if done, err := d.capt.write(service, d.buf, evs[0].Received.UnixNano()); err != nil {
		if terr := j.truncate(prev + int64(done*envRecordSize)); terr != nil {
			return 0, errors.Join(err, terr)
		}
		return done, err
	}
	if cap(d.buf) > 1<<20 {
		d.buf = nil
	}
	return len(evs), nil
}

func (d *outDir) rotateAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.capt.rotateAll()
}

func (d *outDir) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, j := range d.journals {
		errs = append(errs, j.f.Close())
	}
	errs = append(errs, d.capt.close())
	return errors.Join(errs...)
}

// recoverDir reads the envelope journals of one origin directory, cuts off
// the records whose lines did not reach the capture files, and calls fn
// for every record kept.
func recoverDir(dir string, log zerolog.Logger, fn func(service string, e *Envelope)) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("logpub: collected dir: %w", err)
	}
	for _, ent := range ents {
		n := ent.Name()
		if ent.IsDir() || !strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".env") {
			continue
		}
		service := strings.TrimSuffix(strings.TrimPrefix(n, "."), ".env")
		if checkService(service) != nil {
			continue
		}
		if err := recoverJournal(dir, service, log, fn); err != nil {
			return err
		}
	}
	return nil
}

// recoverWindow is how much of a journal, newest first, recovery reads:
// enough to align it with the capture (a batch) and to cover the cursors
// saved since the cursor file's last save (SaveEvery), not the whole
// journal of every origin and service at each start.
const recoverWindow = 2 << 20

// readTail reads the last max bytes of a file, from a record boundary;
// from is where they start, size the file's whole records.
func readTail(path string, max int64) (b []byte, from, size int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("logpub: read envelope journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("logpub: read envelope journal: %w", err)
	}
	size = fi.Size() - fi.Size()%envRecordSize
	from = size - min(size, max-max%envRecordSize)
	b = make([]byte, size-from)
	if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, 0, fmt.Errorf("logpub: read envelope journal: %w", err)
	}
	return b, from, size, nil
}

func recoverJournal(dir, service string, log zerolog.Logger, fn func(string, *Envelope)) error {
	p := journalPath(dir, service)
	curB, curFrom, _, err := readTail(p, recoverWindow)
	if err != nil {
		return err
	}
	var prevB []byte
	var prevFrom int64
	if curFrom == 0 && len(curB) < recoverWindow {
		if prevB, prevFrom, _, err = readTail(p+".1", recoverWindow-int64(len(curB))); err != nil {
			return err
		}
	}
	prev, _ := DecodeEnvelopes(prevB)
	cur, _ := DecodeEnvelopes(curB)
	all := append(prev, cur...)
	tail := captureTail(dir, service, collectMaxBatch+8)
	keep, ok := alignJournal(all, tail)
	if !ok {
		log.Warn().Str("dir", dir).Str("service", service).Msg("envelope journal does not match the capture file's end; kept as is")
	}
	if drop := len(all) - keep; drop > 0 {
		log.Info().Str("dir", dir).Str("service", service).Int("records", drop).Msg("envelope records of events not captured before a crash cut off; they will be collected again")
		if keep < len(prev) {
			if err := os.Truncate(p+".1", prevFrom+int64(keep)*envRecordSize); err != nil {
				return fmt.Errorf("logpub: cut envelope journal: %w", err)
			}
			if err := os.Truncate(p, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("logpub: cut envelope journal: %w", err)
			}
		} else if err := os.Truncate(p, curFrom+int64(keep-len(prev))*envRecordSize); err != nil {
			return fmt.Errorf("logpub: cut envelope journal: %w", err)
		}
		all = all[:keep]
	}
	for i := range all {
		fn(service, &all[i])
	}
	return nil
}

// alignJournal returns how many records of recs have their line in the
// capture (tail holds its last lines): the journal runs ahead of the
// capture by at most one write (collectMaxBatch records). ok is false when
// no alignment is found (capture files removed by hand): all are kept.
func alignJournal(recs []Envelope, tail [][]byte) (keep int, ok bool) {
	for drop := 0; drop <= collectMaxBatch && drop <= len(recs); drop++ {
		if matchTail(recs[:len(recs)-drop], tail) {
			return len(recs) - drop, true
		}
	}
	return len(recs), false
}

// matchTail reports whether the last records describe the last lines (up
// to 4 compared, by length and CRC).
func matchTail(recs []Envelope, tail [][]byte) bool {
	if len(recs) == 0 {
		return len(tail) == 0
	}
	k := min(4, len(recs), len(tail))
	if k == 0 {
		return false
	}
	for i := 1; i <= k; i++ {
		r, l := recs[len(recs)-i], tail[len(tail)-i]
		if int(r.Len) != len(l) || r.CRC != crc32.ChecksumIEEE(l) {
			return false
		}
	}
	return true
}

// captureTail returns up to n last whole lines of a collected service's
// capture: its current file and, when that holds fewer, its newest
// rotated file.
func captureTail(dir, service string, n int) [][]byte {
	cur := tailOfFile(filepath.Join(dir, service+".log"), n)
	if len(cur) >= n {
		return cur
	}
	c := &capture{cfg: CaptureConfig{Dir: dir}}
	_, all := c.backups(service)
	if len(all) == 0 {
		return cur
	}
	prev := tailOfFile(all[len(all)-1], n-len(cur))
	return append(prev, cur...)
}

// tailOfFile returns up to n last whole lines of a plain or gzip file.
func tailOfFile(path string, n int) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil
		}
		r = zr
	} else if fi, err := f.Stat(); err == nil && fi.Size() > 16<<20 {
		// The lines looked at are a batch at most: 16 MiB from the end.
		f.Seek(fi.Size()-16<<20, io.SeekStart)
		br := bufio.NewReader(f)
		br.ReadSlice('\n') // a partial first line
		r = br
	}
	var lines [][]byte
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, _, err := readLine(br)
		if len(line) > 0 {
			lines = append(lines, line)
			if len(lines) > 2*n {
				lines = append(lines[:0:0], lines[len(lines)-n:]...)
			}
		}
		if err != nil {
			break
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// cursorFile is the persisted state of a Collector: per origin node, the
// last sequence collected of each of its sources.
type cursorFile struct {
	Version int                      `json:"version"`
	Origins map[string]*cursorOrigin `json:"origins"` // by node UUID
}

type cursorOrigin struct {
	Name    string                  `json:"name"`
	Seen    time.Time               `json:"seen"`
	Sources map[string]cursorSource `json:"sources"` // by source id (decimal)
}

type cursorSource struct {
	Service string `json:"service"`
	Seq     uint64 `json:"seq"`
}

const cursorFileName = "collect-cursors.json"

func loadCursors(dir string) (*cursorFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return &cursorFile{Version: 1, Origins: map[string]*cursorOrigin{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logpub: read collector cursors: %w", err)
	}
	var cf cursorFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("logpub: collector cursors %s: %w", filepath.Join(dir, cursorFileName), err)
	}
	if cf.Version != 1 {
		return nil, fmt.Errorf("logpub: collector cursors %s: unsupported version %d", filepath.Join(dir, cursorFileName), cf.Version)
	}
	if cf.Origins == nil {
		cf.Origins = map[string]*cursorOrigin{}
	}
	return &cf, nil
}

// saveCursors writes the cursor file atomically (temporary file, fsync,
// rename), so a crash leaves the old or the new one, never a mix.
func saveCursors(dir string, cf *cursorFile) error {
	b, err := json.Marshal(cf)
	if err != nil {
		return fmt.Errorf("logpub: encode collector cursors: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, cursorFileName), b, 0o644); err != nil {
		return fmt.Errorf("logpub: save collector cursors: %w", err)
	}
	return nil
}

// originDirName is the directory name of an origin: its node name when
// usable as a file name, else its UUID.
func originDirName(name string, id uuid.UUID) string {
	if name != "" && checkService(name) == nil {
		return name
	}
	return id.String()
}

// sortedServices returns the services of a grouping in a stable order.
func sortedServices(m map[string][]*Event) []string {
	l := make([]string, 0, len(m))
	for s := range m {
		l = append(l, s)
	}
	sort.Strings(l)
	return l
}
