// Command logtail tails the logs of a whole logmesh cluster: it finds every
// logd (on the mesh, or the endpoints given with --connect), subscribes with
// the filters, which the logds apply at the source, merges the streams and
// prints the events: the --since history in the order the logds received
// the events (merge.go), then live events as they come. Events a logd
// dropped for it are reported on stderr. Run logtail --help for the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs logtail until done or interrupted (SIGINT, SIGTERM: exit 0).
func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr, os.Getenv)
}
