// Command logtail tails the logs of a whole logmesh cluster: it finds every
// logd (on the mesh, or the endpoints given with --connect), subscribes with
// the filters, which the logds apply at the source, merges the streams and
// prints the events as they come. Run logtail --help for the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
