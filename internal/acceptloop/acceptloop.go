// Package acceptloop paces a server's accept loop through failed Accepts.
//
// Accept fails for reasons that pass: the process is out of file
// descriptors (EMFILE) or the system is (ENFILE), or the kernel is short
// of memory. Retrying at once turns that into a loop that burns a core
// and, when each failure is logged, floods the log, while the connections
// already open starve. The net/http server waits 5 ms after a failure,
// doubling up to 1 s; a Pacer does the same for our own listeners and
// logs the first failure of a run and its end, not every one.
package acceptloop

import (
	"time"

	"github.com/rs/zerolog"
)

// The wait after the first failed Accept of a run, and its bound.
const (
	MinWait = 5 * time.Millisecond
	MaxWait = time.Second
)

// Pacer tracks one accept loop's run of failures. The zero value is ready;
// it is used by the loop's goroutine only.
type Pacer struct {
	wait   time.Duration
	failed uint64 // failures in the current run
}

// Failed records a failed Accept, logs it if it starts a run of failures,
// and waits before the next try: 5 ms, doubling up to 1 s. It returns
// false if done is closed first (a server's stop: ctx.Done()).
func (p *Pacer) Failed(done <-chan struct{}, log *zerolog.Logger, what string, err error) bool {
	if p.failed == 0 {
		log.Warn().Err(err).Msgf("%s: accept failed; retrying with back-off up to %v", what, MaxWait)
	}
	p.failed++
	if p.wait == 0 {
		p.wait = MinWait
	} else {
		p.wait = min(2*p.wait, MaxWait)
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// Accepted records a successful Accept, logging the end of a run of
// failures.
func (p *Pacer) Accepted(log *zerolog.Logger, what string) {
	if p.failed == 0 {
		return
	}
	log.Info().Uint64("failures", p.failed).Msgf("%s: accepting again", what)
	p.failed, p.wait = 0, 0
}
