package harmony

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSourcesPlainAndGzip(t *testing.T) {
	dir := t.TempDir()
	a, b := genLines(1000, 1), genLines(1500, 2)
	writeFile(t, filepath.Join(dir, "h1", "a.log"), a)
	writeFile(t, filepath.Join(dir, "h2", "b.log.gz"), gz(t, b))
	writeFile(t, filepath.Join(dir, "h2", ".partial"), []byte("hidden\n"))
	tasks, bad, err := LoadSources([]string{dir}, SourceOptions{ChunkLines: 400})
	if err != nil || len(bad) != 0 {
		t.Fatalf("err %v bad %v", err, bad)
	}
	var all []byte
	for _, tk := range tasks {
		all = append(all, tk.Data...)
	}
	if !bytes.Equal(all, append(append([]byte(nil), a...), b...)) {
		t.Fatal("tasks do not hold the files' lines in order")
	}
	if len(tasks) != 3+4 || tasks[3].Source != filepath.Join(dir, "h2", "b.log.gz") || tasks[4].FirstLine != 401 {
		t.Fatalf("unexpected cut: %d tasks, task 3 %s, task 4 line %d", len(tasks), tasks[3].Source, tasks[4].FirstLine)
	}
	if _, _, err := LoadSources([]string{filepath.Join(dir, "nope")}, SourceOptions{}); err == nil {
		t.Fatal("missing path accepted")
	}
}

// badInputTree writes a tree with every kind of bad input; good holds the
// lines that are fine, in source order.
func badInputTree(t *testing.T) (dir string, good []byte) {
	dir = t.TempDir()
	ok := genLines(3000, 3)
	writeFile(t, filepath.Join(dir, "1-ok.log"), ok)
	// A corrupt gzip member: the header is fine, the deflate data is not.
	z := gz(t, genLines(500, 4))
	for i := 20; i < 40; i++ {
		z[i] ^= 0x5a
	}
	writeFile(t, filepath.Join(dir, "2-corrupt.log.gz"), z)
	// A truncated gzip: the lines before the cut are kept.
	lines := genLines(2000, 5)
	tz := gz(t, lines)
	writeFile(t, filepath.Join(dir, "3-truncated.log.gz"), tz[:len(tz)/2])
	// Lines that are not JSON among good ones, and a plain file cut mid-line.
	mixed := "{\"level\":\"warn\",\"service\":\"api\"}\nthis is not json\n{\"level\":\"error\"\n{\"level\":\"error\",\"service\":\"api\"}\n{\"level\":\"warn\",\"serv"
	writeFile(t, filepath.Join(dir, "4-mixed.log"), []byte(mixed))
	return dir, ok
}

func TestBadInputBatchCompletes(t *testing.T) {
	dir, _ := badInputTree(t)
	tasks, srcBad, err := LoadSources([]string{dir}, SourceOptions{ChunkLines: 300})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcBad) != 2 {
		t.Fatalf("source errors %+v, want the corrupt and the truncated gzip", srcBad)
	}
	for _, b := range srcBad {
		if !strings.Contains(b.Source, "gz") || b.Line == 0 || b.Reason == "" {
			t.Errorf("source error without file and line: %+v", b)
		}
	}
	if !strings.HasSuffix(srcBad[1].Source, "3-truncated.log.gz") || srcBad[1].Line < 2 {
		t.Errorf("truncated gzip should keep its first lines: %+v", srcBad[1])
	}
	job := mustJob(t, "filter level>=warn")
	want, wantRep := localRun(t, job, tasks)
	ws := startWorkers(t, 2)
	got, rep := distRun(t, job, tasks, endpoints(ws), VentilatorConfig{})
	if !bytes.Equal(got, want) {
		t.Fatal("distributed output differs from the local run")
	}
	mixed := filepath.Join(dir, "4-mixed.log")
	wantBad := []BadLine{{Source: mixed, Line: 2}, {Source: mixed, Line: 3}, {Source: mixed, Line: 5}}
	if rep.Bad != 3 || len(rep.BadLines) != 3 {
		t.Fatalf("bad lines %d %+v, want 3", rep.Bad, rep.BadLines)
	}
	for i, b := range rep.BadLines {
		if b.Source != wantBad[i].Source || b.Line != wantBad[i].Line || b.Reason == "" {
			t.Errorf("bad line %d: %+v, want %s:%d", i, b, wantBad[i].Source, wantBad[i].Line)
		}
	}
	if rep.Bad != wantRep.Bad || rep.Lines != wantRep.Lines {
		t.Fatalf("report %+v differs from local %+v", rep, wantRep)
	}
	if !bytes.Contains(got, []byte(`{"level":"error","service":"api"}`)) {
		t.Fatal("good line after bad ones lost")
	}
}

func TestLongLineReported(t *testing.T) {
	dir := t.TempDir()
	long := `{"level":"warn","message":"` + strings.Repeat("x", 5000) + `"}`
	writeFile(t, filepath.Join(dir, "a.log"), []byte("{\"level\":\"warn\"}\n"+long+"\n{\"level\":\"error\"}\n"))
	tasks, bad, err := LoadSources([]string{dir}, SourceOptions{MaxLineBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Line != 2 {
		t.Fatalf("bad %+v, want line 2", bad)
	}
	out, _ := localRun(t, mustJob(t, "filter"), tasks)
	if string(out) != "{\"level\":\"warn\"}\n{\"level\":\"error\"}\n" || tasks[len(tasks)-1].FirstLine != 3 {
		t.Fatalf("output %q, tasks %+v", out, tasks)
	}
}
