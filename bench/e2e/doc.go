// Package e2e measures logmesh end to end, with real processes on
// 127.0.0.1, side by side with the tools people use today.
//
// Relay starts a real logd (or rsyslogd with its own imtcp → omfile
// configuration, or a minimal raw TCP → file sink as the ceiling), feeds it
// the same 200-byte events from this process, waits until every event is in
// the output file, and reports events/s, the server's CPU seconds per million
// events (from /proc/<pid>/stat) and its peak RSS. Latency sends timestamped
// events at a fixed rate to both a local file and logd, and measures the
// receive delay of `tail -F` on that file and of `logtail --follow` on logd's
// stream, for the same events.
//
// Every process started here is stopped on return (and killed with its
// parent through Pdeathsig if the harness dies).
//
//	bins, err := e2e.Build(ctx, dir, false)
//	res, err := e2e.Relay(ctx, e2e.RelayConfig{Target: e2e.TargetLogd, Bins: bins, Events: 100000, Dir: dir})
//	fmt.Println(res.EventsPerSec, res.CPUPerMillion)
//
// The command bench/e2e/cmd/e2ebench runs them all and prints the figures
// as `go test -bench` lines, which scripts/bench.sh folds into BENCHMARKS.md.
package e2e
