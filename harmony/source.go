package harmony

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Task is one unit of work: a chunk of consecutive lines of one source file.
type Task struct {
	Source    string // file the lines come from
	FirstLine uint64 // 1-based line number of the first line
	Lines     int    // number of lines
	Data      []byte // the lines, each ending with '\n'
}

// SourceOptions says how archives are cut into tasks.
type SourceOptions struct {
	// ChunkLines is the most lines per task (default 2000).
	ChunkLines int
	// ChunkBytes is the most bytes per task (default 256 KiB).
	ChunkBytes int
	// MaxLineBytes is the longest line kept; longer ones are reported as
	// bad and skipped (default 1 MiB).
	MaxLineBytes int
}

func (o *SourceOptions) defaults() {
	if o.ChunkLines <= 0 {
		o.ChunkLines = 2000
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 256 << 10
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 1 << 20
	}
	o.ChunkBytes = min(o.ChunkBytes, MaxTaskBytes)
	o.MaxLineBytes = min(o.MaxLineBytes, o.ChunkBytes)
}

// LoadSources reads the given files and directory trees (every regular file
// not starting with '.', in lexical order; gzip files are recognised by
// their magic bytes) and cuts them into tasks in source order. Files that
// cannot be read, corrupt or truncated compressed data and overlong lines
// are reported as bad lines with their file and line; what was read before
// is kept. The error is only for a path that does not exist.
func LoadSources(paths []string, opt SourceOptions) ([]Task, []BadLine, error) {
	opt.defaults()
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("harmony: source %s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && path != p {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("harmony: walk %s: %w", p, err)
		}
	}
	var tasks []Task
	var bad []BadLine
	for _, f := range files {
		tasks, bad = loadFile(f, opt, tasks, bad)
	}
	return tasks, bad, nil
}

func loadFile(path string, opt SourceOptions, tasks []Task, bad []BadLine) ([]Task, []BadLine) {
	f, err := os.Open(path)
	if err != nil {
		return tasks, append(bad, BadLine{Source: path, Reason: "open: " + err.Error()})
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return tasks, append(bad, BadLine{Source: path, Line: 1, Reason: "gzip: " + err.Error()})
		}
		defer zr.Close()
		r = zr
	}
	lr := bufio.NewReaderSize(r, 64<<10)
	cur := Task{Source: path, FirstLine: 1}
	flush := func() {
		if cur.Lines > 0 {
			tasks = append(tasks, cur)
		}
		cur = Task{Source: path, FirstLine: cur.FirstLine + uint64(cur.Lines)}
	}
	var line []byte
	for n := uint64(1); ; n++ {
		line, err = readLine(lr, line[:0], opt.MaxLineBytes)
		if errors.Is(err, errLongLine) {
			bad = append(bad, BadLine{Source: path, Line: n, Reason: fmt.Sprintf("line longer than %d bytes", opt.MaxLineBytes)})
			flush()
			cur.FirstLine = n + 1
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			// The partial line before a read error is incomplete: drop it.
			bad = append(bad, BadLine{Source: path, Line: n, Reason: "read: " + err.Error()})
			break
		}
		if len(line) > 0 {
			if cur.Lines >= opt.ChunkLines || len(cur.Data)+len(line)+1 > opt.ChunkBytes {
				flush()
			}
			cur.Data = append(cur.Data, line...)
			cur.Data = append(cur.Data, '\n')
			cur.Lines++
		} else if err == nil {
			// An empty line: keep it so line numbers stay right.
			if cur.Lines >= opt.ChunkLines || len(cur.Data)+1 > opt.ChunkBytes {
				flush()
			}
			cur.Data = append(cur.Data, '\n')
			cur.Lines++
		}
		if err != nil {
			break
		}
	}
	flush()
	return tasks, bad
}

var errLongLine = errors.New("line too long")

// readLine reads one line without its '\n' into dst. At the end of input it
// returns the last unterminated line (if any) with io.EOF. A line over max
// bytes is consumed and reported with errLongLine.
func readLine(r *bufio.Reader, dst []byte, max int) ([]byte, error) {
	long := false
	for {
		frag, err := r.ReadSlice('\n')
		if !long {
			if len(dst)+len(frag) > max+1 {
				long = true
				dst = dst[:0]
			} else {
				dst = append(dst, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if long && (err == nil || errors.Is(err, io.EOF)) {
			return dst[:0], errLongLine
		}
		if err == nil {
			dst = bytes.TrimSuffix(dst[:len(dst)-1], []byte("\r"))
			return dst, nil
		}
		return dst, err
	}
}
