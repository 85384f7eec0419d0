// This file is not part of cmd/logd: bench/e2e adds it to a benchmark build
// of logd with `go build -overlay`, so that the end-to-end runs can profile
// the real daemon without a profiling flag in the product.

package main

import (
	"context"
	"flag"
	"os"
	"runtime"
	"runtime/pprof"
)

var benchProfile struct{ cpu, mem string }

func init() {
	registerComponent(component{name: "benchprofile", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&benchProfile.cpu, "bench-cpuprofile", "", "write a CPU profile of the whole run to this file")
		fs.StringVar(&benchProfile.mem, "bench-memprofile", "", "write a heap profile to this file at shutdown")
	}, start: startBenchProfile})
}

func startBenchProfile(_ context.Context, d *daemon) (func(), error) {
	var cpu *os.File
	if benchProfile.cpu != "" {
		f, err := os.Create(benchProfile.cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cpu = f
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if benchProfile.mem != "" {
			f, err := os.Create(benchProfile.mem)
			if err != nil {
				d.log.Error().Err(err).Msg("bench memprofile")
				return
			}
			runtime.GC()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}, nil
}
