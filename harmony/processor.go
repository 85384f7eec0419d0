package harmony

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Job is a parsed processor spec: what every worker does to a task's lines,
// and how the collector merges the results. A Job must be safe for
// concurrent use and deterministic, so that any worker, any number of times,
// gives the same result for the same task.
type Job interface {
	// Spec returns the spec the job was parsed from; it travels in every task.
	Spec() string
	// Process handles the lines of one task (each ends with '\n') and
	// returns the task's result. It reports each line it cannot handle with
	// bad (0-based line index within data) and goes on with the rest.
	Process(data []byte, bad func(line int, reason string)) ([]byte, error)
	// NewMerger returns a merger that writes the batch's output to w.
	NewMerger(w io.Writer) Merger
}

// Merger combines task results, given in task order, into the output.
type Merger interface {
	// Add merges the result of the next task. A result it cannot decode is
	// rejected with an error wrapping ErrBadResult and changes nothing.
	Add(result []byte) error
	// Close writes whatever the merger still holds.
	Close() error
}

// ErrBadResult is wrapped by Merger.Add for a result it cannot decode.
var ErrBadResult = errors.New("harmony: bad result")

// ErrBadSpec is wrapped by ParseSpec for a spec it cannot parse.
var ErrBadSpec = errors.New("harmony: bad processor spec")

// ProcessorFunc parses the arguments of a spec (what follows its name).
type ProcessorFunc func(args string) (Job, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]ProcessorFunc{}
)

// RegisterProcessor makes a processor available under name, as the first
// word of a spec ("filter level>=warn"). Registering a name twice replaces
// the first.
func RegisterProcessor(name string, parse ProcessorFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = parse
}

// Processors returns the registered processor names, sorted.
func Processors() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func init() {
	RegisterProcessor("filter", parseFilter)
	RegisterProcessor("count-by", parseCountBy)
	RegisterProcessor("convert", parseConvert)
}

// ParseSpec parses a processor spec: a processor name and its arguments,
// e.g. "filter level>=warn service=api msg~timeout",
// "count-by level,service,minute" or "convert logfmt time,level,message".
func ParseSpec(spec string) (Job, error) {
	name, args, _ := strings.Cut(strings.TrimSpace(spec), " ")
	registryMu.RLock()
	parse, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown processor %q (have %s)", ErrBadSpec, name, strings.Join(Processors(), ", "))
	}
	job, err := parse(strings.TrimSpace(args))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadSpec, spec, err)
	}
	return job, nil
}

// splitTerms splits s on spaces, keeping double-quoted parts together and
// removing the quotes: `msg~"conn reset" level>=warn`.
func splitTerms(s string) ([]string, error) {
	var terms []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case c == ' ' && !inQuote:
			if have {
				terms = append(terms, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if have {
		terms = append(terms, cur.String())
	}
	return terms, nil
}

// forEachLine calls fn with each line of data (without its '\n').
func forEachLine(data []byte, fn func(i int, line []byte)) {
	for i := 0; len(data) > 0; i++ {
		n := indexByte(data, '\n')
		if n < 0 {
			fn(i, data)
			return
		}
		fn(i, data[:n])
		data = data[n+1:]
	}
}
