package harmony

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// zmqLogger routes zmq4's own messages (such as a peer that went away
// during the handshake) to our logger at debug level, instead of stderr.
func zmqLogger(l zerolog.Logger) *log.Logger {
	return log.New(debugWriter{l.With().Str("from", "zmq4").Logger()}, "", 0)
}

type debugWriter struct{ l zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
