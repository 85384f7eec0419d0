package harmony

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func runSpec(t *testing.T, spec, input string) (string, []int) {
	t.Helper()
	job := mustJob(t, spec)
	var bad []int
	res, err := job.Process([]byte(input), func(i int, _ string) { bad = append(bad, i) })
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m := job.NewMerger(&out)
	if err := m.Add(res); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), bad
}

func TestFilter(t *testing.T) {
	input := `{"level":"info","service":"api","message":"ok","code":200}
{"level":"warn","service":"api","message":"slow request","code":200}
{"level":"error","service":"db","message":"connection reset","code":500}
not json
{"level":"error","service":"api","msg":"timeout","code":504,"user":"a\"b"}

{"level":"debug","service":"api"}
`
	lines := strings.Split(input, "\n")
	cases := []struct {
		spec string
		want []int // indexes of the lines kept
	}{
		{"filter", []int{0, 1, 2, 4, 6}},
		{"filter level>=warn", []int{1, 2, 4}},
		{"filter level>warn", []int{2, 4}},
		{"filter level<info", []int{6}},
		{"filter level<=info", []int{0, 6}},
		{"filter level=error service=api", []int{4}},
		{"filter service!=api", []int{2}},
		{"filter msg~^(slow|time)", []int{1, 4}},
		{`filter msg~"connection reset"`, []int{2}},
		{"filter code=500", []int{2}},
		{`filter user="a\"b"`, []int{4}},
		{"filter code~^5", []int{2, 4}},
		{"filter missing=x", nil},
	}
	for _, c := range cases {
		got, bad := runSpec(t, c.spec, input)
		var want string
		for _, i := range c.want {
			want += lines[i] + "\n"
		}
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", c.spec, got, want)
		}
		if len(bad) != 1 || bad[0] != 3 {
			t.Errorf("%s: bad lines %v, want [3]", c.spec, bad)
		}
	}
}

func TestCountBy(t *testing.T) {
	input := `{"level":"info","service":"api","time":"2026-11-27T04:36:07Z"}
{"level":"info","service":"api","time":"2026-11-27T04:36:59.5Z"}
{"level":"warn","service":"api","time":"2026-11-27T05:37:01+01:00"}
{"level":"warn","time":1795754221}
{"level":"info","service":"api","time":"2026-11-27T04:37:00Z"}
{broken
`
	got, bad := runSpec(t, "count-by level,service,minute", input)
	want := `{"level":"info","service":"api","minute":"2026-11-27T04:36Z","count":2}
{"level":"info","service":"api","minute":"2026-11-27T04:37Z","count":1}
{"level":"warn","service":null,"minute":"2026-11-27T04:37Z","count":1}
{"level":"warn","service":"api","minute":"2026-11-27T04:37Z","count":1}
`
	if got != want {
		t.Errorf("count-by:\n got %s\nwant %s", got, want)
	}
	if len(bad) != 1 || bad[0] != 5 {
		t.Errorf("bad lines %v, want [5]", bad)
	}
}

func TestCountByMergeIsOrderFree(t *testing.T) {
	data := genLines(3000, 7)
	tasks := cut(data, "g", 250)
	job := mustJob(t, "count-by service,level")
	want, _ := localRun(t, job, tasks)
	// Merge the same results in reverse order: the table must not change.
	var out bytes.Buffer
	m := job.NewMerger(&out)
	for i := len(tasks) - 1; i >= 0; i-- {
		res, _ := job.Process(tasks[i].Data, func(int, string) {})
		if err := m.Add(res); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	if out.String() != string(want) {
		t.Fatalf("merge depends on order:\n%s\nvs\n%s", out.String(), want)
	}
	if err := m.Add([]byte{0, 0, 0, 9, 1}); !errors.Is(err, ErrBadResult) {
		t.Fatalf("garbage result: %v", err)
	}
}

func TestConvertLogfmt(t *testing.T) {
	input := `{"level":"warn","service":"api","message":"slow request","n":3,"ok":true,"tags":["a"]}
{"level":"info","message":"say \"hi\"","empty":""}
oops
`
	got, bad := runSpec(t, "convert logfmt", input)
	want := `level=warn service=api message="slow request" n=3 ok=true tags="[\"a\"]"
level=info message="say \"hi\"" empty=""
`
	if got != want {
		t.Errorf("convert logfmt:\n got %q\nwant %q", got, want)
	}
	if len(bad) != 1 || bad[0] != 2 {
		t.Errorf("bad lines %v, want [2]", bad)
	}
	got, _ = runSpec(t, "convert logfmt message,level", input)
	if want := "message=\"slow request\" level=warn\nmessage=\"say \\\"hi\\\"\" level=info\n"; got != want {
		t.Errorf("convert logfmt message,level:\n got %q\nwant %q", got, want)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, spec := range []string{"", "nope x", "filter level>=loud", "filter service>=api",
		"filter msg~(", "filter =x", `filter msg~"open`, "count-by", "count-by a,,b", "convert", "convert yaml", "convert logfmt a,,b"} {
		if _, err := ParseSpec(spec); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%q: %v, want ErrBadSpec", spec, err)
		}
	}
}

func TestScanObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkScan(t, []byte(s))
	}
}

var jsonSeeds = []string{
	`{}`, ` { "a" : 1 } `, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `{"a":-1.5e+3}`,
	`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a" 1}`, `{"a":1,}`, `[1]`, `"s"`, `{"a":tru}`,
	`{"a":1}x`, `{"a":"b`, "{\"a\":\"\x01\"}", `{"a":{"b":[}}`, `{"a":[1 2]}`, `{"a":1e}`, `null`, ` {"a":{}} `,
}

func checkScan(t *testing.T, line []byte) {
	trimmed := bytes.TrimLeft(line, " \t\r\n")
	want := json.Valid(line) && len(trimmed) > 0 && trimmed[0] == '{'
	n := 0
	got := scanObject(line, func(k, v []byte) {
		n++
		if !json.Valid(v) {
			t.Fatalf("%q: value %q is not JSON", line, v)
		}
	}) == nil
	if got != want {
		t.Fatalf("%q: scanObject ok=%v, encoding/json ok=%v", line, got, want)
	}
}

func FuzzScanObject(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkScan(t, line)
	})
}

func TestCountLinesAgreesWithForEachLine(t *testing.T) {
	for _, s := range []string{"", "\n", "a", "a\n", "a\nb", "a\n\nb\n", "\n\n\n", "{}\n{}"} {
		want := 0
		forEachLine([]byte(s), func(int, []byte) { want++ })
		if got := countLines([]byte(s)); got != want {
			t.Errorf("countLines(%q) = %d, forEachLine sees %d", s, got, want)
		}
	}
}
