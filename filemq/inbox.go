package filemq

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// stateDir is the inbox subdirectory for partial files and the manifest;
// it is never a delivery target.
const stateDir = ".filemq"

var errRejected = errors.New("filemq: rejected file")

// held is a complete inbox file as the manifest records it.
type held struct {
	sha   string
	size  int64
	mtime int64 // UnixNano, to notice local edits
}

// partial is a file being received into stateDir/partial.
type partial struct {
	rel    string
	name   string // file name in stateDir/partial
	f      *os.File
	h      hash.Hash
	sha    string // expected SHA-256, "" when the server sends none
	size   int64  // declared size, -1 when unknown
	off    int64  // bytes written and hashed
	stale  bool   // a resync for it was requested; chunks at other offsets are ignored
	tries  int
	failed bool // given up after MaxRetries
}

// inbox writes received files. Every path goes through an os.Root, so that
// nothing can be written outside the inbox whatever the server sends.
type inbox struct {
	cfg      ClientConfig
	root     *os.Root
	held     map[string]held
	parts    map[string]*partial
	manifest *os.File
}

func openInbox(cfg ClientConfig) (*inbox, error) {
	if err := os.MkdirAll(filepath.Join(cfg.Inbox, stateDir, "partial"), 0o755); err != nil {
		return nil, fmt.Errorf("filemq: create inbox %s: %w", cfg.Inbox, err)
	}
	root, err := os.OpenRoot(cfg.Inbox)
	if err != nil {
		return nil, fmt.Errorf("filemq: open inbox %s: %w", cfg.Inbox, err)
	}
	in := &inbox{cfg: cfg, root: root, held: map[string]held{}, parts: map[string]*partial{}}
	if err := in.load(); err != nil {
		root.Close()
		return nil, err
	}
	return in, nil
}

func (in *inbox) close() {
	for _, p := range in.parts {
		if p.f != nil {
			p.f.Close()
		}
	}
	if in.manifest != nil {
		in.manifest.Close()
	}
	in.root.Close()
}

// load reads the manifest, keeps the entries whose file is unchanged,
// rewrites it compacted, and reopens the partial files left by a previous run.
func (in *inbox) load() error {
	mpath := path.Join(stateDir, "manifest")
	if f, err := in.root.Open(mpath); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			in.parseManifestLine(sc.Text())
		}
		f.Close()
	}
	for rel, h := range in.held {
		st, err := in.root.Stat(rel)
		if err != nil || st.Size() != h.size || st.ModTime().UnixNano() != h.mtime {
			delete(in.held, rel)
		}
	}
	tmp := mpath + ".tmp"
	f, err := in.root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("filemq: write manifest: %w", err)
	}
	for rel, h := range in.held {
		fmt.Fprintf(f, "+ %s %d %d %s\n", h.sha, h.size, h.mtime, strconv.Quote(rel))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("filemq: write manifest: %w", err)
	}
	if err := in.root.Rename(tmp, mpath); err != nil {
		return fmt.Errorf("filemq: write manifest: %w", err)
	}
	in.manifest, err = in.root.OpenFile(mpath, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("filemq: open manifest: %w", err)
	}
	return in.loadPartials()
}

func (in *inbox) parseManifestLine(line string) {
	f := strings.SplitN(line, " ", 5)
	switch {
	case len(f) == 5 && f[0] == "+":
		size, err1 := strconv.ParseInt(f[2], 10, 64)
		mtime, err2 := strconv.ParseInt(f[3], 10, 64)
		rel, err3 := strconv.Unquote(f[4])
		if err1 == nil && err2 == nil && err3 == nil {
			in.held[rel] = held{sha: f[1], size: size, mtime: mtime}
		}
	case len(f) == 2 && f[0] == "-":
		if rel, err := strconv.Unquote(f[1]); err == nil {
			delete(in.held, rel)
		}
	}
}

// loadPartials reopens partial files from a previous run: name.meta holds
// the relative path, expected SHA-256 and size; the data's length is the
// resume offset, and its hash is recomputed.
func (in *inbox) loadPartials() error {
	dir := path.Join(stateDir, "partial")
	entries, err := fs.ReadDir(in.root.FS(), dir)
	if err != nil {
		return fmt.Errorf("filemq: read partials: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".meta")
		if !ok {
			continue
		}
		meta, err := in.root.ReadFile(path.Join(dir, e.Name()))
		f := strings.SplitN(strings.TrimSpace(string(meta)), " ", 3)
		if err != nil || len(f) != 3 {
			in.removePartial(name)
			continue
		}
		size, err1 := strconv.ParseInt(f[1], 10, 64)
		rel, err2 := strconv.Unquote(f[2])
		if err1 != nil || err2 != nil || localRel(rel) != nil {
			in.removePartial(name)
			continue
		}
		p, err := in.reopen(name, rel, f[0], size)
		if err != nil {
			in.removePartial(name)
			continue
		}
		in.parts[rel] = p
	}
	return nil
}

func (in *inbox) reopen(name, rel, sha string, size int64) (*partial, error) {
	fh, err := in.root.OpenFile(path.Join(stateDir, "partial", name), os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil || (size >= 0 && n > size) {
		fh.Close()
		return nil, fmt.Errorf("filemq: partial %s unusable", name)
	}
	return &partial{rel: rel, name: name, f: fh, h: h, sha: sha, size: size, off: n}, nil
}

func (in *inbox) removePartial(name string) {
	dir := path.Join(stateDir, "partial")
	in.root.Remove(path.Join(dir, name))
	in.root.Remove(path.Join(dir, name+".meta"))
}

// localRel checks that rel names a file inside the inbox and outside stateDir.
func localRel(rel string) error {
	if rel == "" || !filepath.IsLocal(rel) || path.Clean(rel) != rel || strings.ContainsRune(rel, 0) || strings.Contains(rel, `\`) {
		return fmt.Errorf("%w: path %.100q escapes the inbox", errRejected, rel)
	}
	if first, _, _ := strings.Cut(rel, "/"); first == stateDir {
		return fmt.Errorf("%w: path %.100q is reserved", errRejected, rel)
	}
	return nil
}

// cacheFor lists what the inbox holds under the subscription, as ICANHAZ
// cache entries keyed relative to it. Keys over 255 bytes cannot be sent;
// such files are sent again on resync.
func (in *inbox) cacheFor() map[string]string {
	c := make(map[string]string, len(in.held)+len(in.parts))
	for rel, h := range in.held {
		if len(rel) <= 255 {
			c[rel] = cacheFull + h.sha
		}
	}
	for rel, p := range in.parts {
		if len(rel) <= 255 && p.sha != "" && !p.failed && p.off > 0 {
			c[rel] = fmt.Sprintf("%s%d:%s", cachePartial, p.off, p.sha)
		}
	}
	return c
}

// result tells the client what a chunk led to.
type result struct {
	done    bool   // the file is complete in the inbox
	resync  bool   // ask the server again (corrupt chunk, bad checksum, gap)
	deleted bool   // the file was deleted
	rel     string // inbox-relative path
}

// chunk applies one CHEEZBURGER for the inbox-relative path rel.
func (in *inbox) chunk(m *Msg, rel string) (result, error) {
	r := result{rel: rel}
	if err := localRel(rel); err != nil {
		return r, err
	}
	if m.Operation == OpDelete {
		return in.delete(rel)
	}
	if m.Operation != OpCreate {
		return r, fmt.Errorf("%w: %s: unknown operation %d", errRejected, rel, m.Operation)
	}
	sha, size, err := in.declared(m, rel)
	if err != nil {
		return r, err
	}
	p := in.parts[rel]
	if p != nil && p.failed && p.sha == sha {
		return r, nil // given up on this version
	}
	if m.Offset == 0 {
		// Start (or restart) the file: a new version or a fresh send.
		if p, err = in.start(rel, sha, size, p); err != nil {
			return r, err
		}
	}
	if p == nil || p.sha != sha {
		// Mid-file chunk of a version we do not hold: ask from the start.
		r.resync = true
		return r, nil
	}
	if int64(m.Offset) != p.off {
		if int64(m.Offset) > p.off && !p.stale {
			p.stale = true
			r.resync = true
		}
		return r, nil // stale chunk of an interrupted stream
	}
	p.stale = false
	if v, ok := m.Headers[hdrCRC32C]; ok {
		want, err := strconv.ParseUint(v, 16, 32)
		if err != nil || uint32(want) != crc32.Checksum(m.Chunk, castagnoli) {
			p.stale = true
			r.resync = true
			return r, fmt.Errorf("filemq: %s: chunk at offset %d fails its CRC-32C, requested again", rel, m.Offset)
		}
	}
	end := p.off + int64(len(m.Chunk))
	if (p.size >= 0 && end > p.size) || end > in.cfg.MaxFileSize {
		in.fail(p)
		return r, fmt.Errorf("%w: %s: data beyond the declared size", errRejected, rel)
	}
	if _, err := p.f.WriteAt(m.Chunk, p.off); err != nil {
		return r, fmt.Errorf("filemq: write %s at %d: %w", rel, p.off, err)
	}
	p.h.Write(m.Chunk)
	p.off = end
	if !m.EOF {
		return r, nil
	}
	return in.finish(p)
}

// declared reads and checks the extension headers (absent from the reference server).
func (in *inbox) declared(m *Msg, rel string) (sha string, size int64, err error) {
	size = -1
	if v, ok := m.Headers[hdrSize]; ok {
		size, err = strconv.ParseInt(v, 10, 64)
		if err != nil || size < 0 {
			return "", 0, fmt.Errorf("%w: %s: bad %s %.30q", errRejected, rel, hdrSize, v)
		}
		if size > in.cfg.MaxFileSize {
			return "", 0, fmt.Errorf("%w: %s: declared size %d exceeds the limit %d", errRejected, rel, size, in.cfg.MaxFileSize)
		}
	}
	if v, ok := m.Headers[hdrSHA256]; ok {
		if b, err := hex.DecodeString(v); err != nil || len(b) != sha256.Size {
			return "", 0, fmt.Errorf("%w: %s: bad %s %.80q", errRejected, rel, hdrSHA256, v)
		}
		sha = v
	}
	return sha, size, nil
}

func partialName(rel string) string {
	sum := sha256.Sum256([]byte(rel))
	return hex.EncodeToString(sum[:12])
}

func (in *inbox) start(rel, sha string, size int64, old *partial) (*partial, error) {
	tries := 0
	if old != nil {
		if old.sha == sha {
			tries = old.tries
		}
		old.f.Close()
	}
	name := partialName(rel)
	dir := path.Join(stateDir, "partial")
	meta := fmt.Sprintf("%s %d %s\n", sha, size, strconv.Quote(rel))
	if err := in.root.WriteFile(path.Join(dir, name+".meta"), []byte(meta), 0o644); err != nil {
		return nil, fmt.Errorf("filemq: start %s: %w", rel, err)
	}
	f, err := in.root.OpenFile(path.Join(dir, name), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("filemq: start %s: %w", rel, err)
	}
	p := &partial{rel: rel, name: name, f: f, h: sha256.New(), sha: sha, size: size, tries: tries}
	in.parts[rel] = p
	return p, nil
}

func (in *inbox) fail(p *partial) {
	p.f.Truncate(0)
	p.f.Seek(0, io.SeekStart)
	p.off, p.h = 0, sha256.New()
	p.failed = true
}

// finish verifies the file and moves it into place.
func (in *inbox) finish(p *partial) (result, error) {
	r := result{rel: p.rel}
	sum := hex.EncodeToString(p.h.Sum(nil))
	if (p.size >= 0 && p.off != p.size) || (p.sha != "" && sum != p.sha) {
		p.tries++
		in.fail(p)
		if p.tries <= in.cfg.MaxRetries {
			p.failed = false
			r.resync = true
		}
		return r, fmt.Errorf("filemq: %s: checksum %s, want %s (size %d, want %d), attempt %d",
			p.rel, sum, p.sha, p.off, p.size, p.tries)
	}
	if err := p.f.Close(); err != nil {
		return r, fmt.Errorf("filemq: close %s: %w", p.rel, err)
	}
	delete(in.parts, p.rel)
	if dir := path.Dir(p.rel); dir != "." {
		if err := in.root.MkdirAll(dir, 0o755); err != nil {
			return r, fmt.Errorf("filemq: create directory for %s: %w", p.rel, err)
		}
	}
	pdir := path.Join(stateDir, "partial")
	if err := in.root.Rename(path.Join(pdir, p.name), p.rel); err != nil {
		return r, fmt.Errorf("filemq: move %s into the inbox: %w", p.rel, err)
	}
	in.root.Remove(path.Join(pdir, p.name+".meta"))
	st, err := in.root.Stat(p.rel)
	if err != nil {
		return r, fmt.Errorf("filemq: stat %s: %w", p.rel, err)
	}
	h := held{sha: sum, size: st.Size(), mtime: st.ModTime().UnixNano()}
	in.held[p.rel] = h
	fmt.Fprintf(in.manifest, "+ %s %d %d %s\n", h.sha, h.size, h.mtime, strconv.Quote(p.rel))
	r.done = true
	return r, nil
}

func (in *inbox) delete(rel string) (result, error) {
	r := result{rel: rel, deleted: true}
	if p, ok := in.parts[rel]; ok {
		p.f.Close()
		in.removePartial(p.name)
		delete(in.parts, rel)
	}
	if in.cfg.KeepDeleted {
		r.deleted = false
		return r, nil
	}
	if err := in.root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("filemq: delete %s: %w", rel, err)
	}
	if _, ok := in.held[rel]; ok {
		delete(in.held, rel)
		fmt.Fprintf(in.manifest, "- %s\n", strconv.Quote(rel))
	}
	return r, nil
}
