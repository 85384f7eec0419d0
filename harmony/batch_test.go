package harmony

import (
	"bytes"
	"testing"
)

func TestBatchFilterSmall(t *testing.T) {
	data := genLines(20000, 1)
	tasks := cut(data, "gen.log", 500)
	job := mustJob(t, "filter level>=warn service=api")
	want, wantRep := localRun(t, job, tasks)
	if len(want) == 0 {
		t.Fatal("reference output is empty: the filter matches nothing")
	}
	ws := startWorkers(t, 3)
	got, rep := distRun(t, job, tasks, endpoints(ws), VentilatorConfig{})
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs: got %d bytes, want %d", len(got), len(want))
	}
	if rep.Lines != wantRep.Lines || rep.Tasks != len(tasks) {
		t.Fatalf("report %+v, want lines %d tasks %d", rep, wantRep.Lines, len(tasks))
	}
}
