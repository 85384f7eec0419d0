package filemq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// fileInfo is one published file version.
type fileInfo struct {
	vpath string // virtual path: alias + "/" + relative path
	local string // path on disk
	size  int64
	mtime time.Time
	sha   string // hex SHA-256 of the content
}

// change is what a scan found: a new or changed file, or a deleted one.
type change struct {
	op   uint8 // OpCreate or OpDelete
	info fileInfo
}

type mount struct {
	dir   string
	alias string
}

type seen struct {
	size  int64
	mtime time.Time
}

// scanner owns the published trees: it walks them, hashes stable files and
// reports changes. It runs in its own goroutine so that hashing large files
// never stalls the server's socket loop.
type scanner struct {
	cfg       ServerConfig
	mounts    []mount
	published map[string]fileInfo // by vpath
	candidate map[string]seen     // not yet stable
}

func newScanner(cfg ServerConfig) *scanner {
	return &scanner{cfg: cfg, published: map[string]fileInfo{}, candidate: map[string]seen{}}
}

// validAlias reports whether alias is a clean absolute virtual path.
func validAlias(alias string) bool {
	return strings.HasPrefix(alias, "/") && path.Clean(alias) == alias && !strings.ContainsRune(alias, 0)
}

func joinVirtual(alias, rel string) string { return path.Join(alias, rel) }

// scan walks every mount once and returns the changes since the last scan.
// force publishes files at once, whatever their age (used by Announce).
func (s *scanner) scan(ctx context.Context, force map[string]bool) ([]change, error) {
	now := time.Now()
	present := map[string]bool{}
	var changes []change
	for _, m := range s.mounts {
		err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: skip, the next scan retries
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !d.Type().IsRegular() {
				return nil // directories are walked; symlinks and devices are never published
			}
			rel, err := filepath.Rel(m.dir, p)
			if err != nil {
				return nil
			}
			rel = filepath.ToSlash(rel)
			if s.cfg.Map != nil {
				mapped, ok := s.cfg.Map(rel)
				if !ok || !filepath.IsLocal(mapped) || path.Clean(mapped) != mapped {
					return nil
				}
				rel = mapped
			}
			vpath := joinVirtual(m.alias, rel)
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			present[vpath] = true
			cur := seen{fi.Size(), fi.ModTime()}
			if old, ok := s.published[vpath]; ok && old.size == cur.size && old.mtime.Equal(cur.mtime) {
				return nil
			}
			prev, wasCandidate := s.candidate[vpath]
			stable := wasCandidate && prev == cur && now.Sub(cur.mtime) >= s.cfg.StableAge
			if !stable && !force[p] {
				s.candidate[vpath] = cur
				return nil
			}
			sum, err := hashFile(ctx, p)
			if err != nil {
				return nil
			}
			delete(s.candidate, vpath)
			info := fileInfo{vpath: vpath, local: p, size: cur.size, mtime: cur.mtime, sha: sum}
			s.published[vpath] = info
			changes = append(changes, change{op: OpCreate, info: info})
			return nil
		})
		if err != nil {
			return changes, fmt.Errorf("filemq: scan %s: %w", m.dir, err)
		}
	}
	for vpath, info := range s.published {
		if !present[vpath] {
			delete(s.published, vpath)
			changes = append(changes, change{op: OpDelete, info: info})
		}
	}
	for vpath := range s.candidate {
		if !present[vpath] {
			delete(s.candidate, vpath)
		}
	}
	return changes, nil
}

// hashFile returns the hex SHA-256 of the file at p, stopping if ctx ends.
func hashFile(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", fmt.Errorf("filemq: hash %s: %w", p, err)
		}
	}
}
