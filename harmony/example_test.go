package harmony_test

import (
	"context"
	"fmt"
	"os"

	"github.com/logmesh/logmesh/harmony"
)

var lines = []byte(`{"level":"info","service":"api","message":"ok"}
{"level":"warn","service":"api","message":"slow request"}
{"level":"error","service":"db","message":"down"}
not json
`)

func ExampleRunLocal() {
	job, err := harmony.ParseSpec("filter level>=warn service=api")
	if err != nil {
		panic(err)
	}
	tasks := []harmony.Task{{Source: "a.log", FirstLine: 1, Lines: 4, Data: lines}}
	rep, _ := harmony.RunLocal(context.Background(), job, tasks, os.Stdout)
	fmt.Printf("bad: %s:%d\n", rep.BadLines[0].Source, rep.BadLines[0].Line)
	// Output:
	// {"level":"warn","service":"api","message":"slow request"}
	// bad: a.log:4
}

func ExampleRun() {
	w, err := harmony.NewWorker(harmony.WorkerConfig{})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	job, _ := harmony.ParseSpec("count-by level")
	tasks := []harmony.Task{{Source: "a.log", FirstLine: 1, Lines: 4, Data: lines}}
	_, err = harmony.Run(context.Background(), harmony.RunConfig{
		Job: job, Tasks: tasks, Out: os.Stdout,
		Workers: harmony.StaticWorkers{w.Endpoint()},
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// {"level":"error","count":1}
	// {"level":"info","count":1}
	// {"level":"warn","count":1}
}
