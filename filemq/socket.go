package filemq

import (
	"io"
	"log"

	"github.com/go-zeromq/zmq4"
)

// discardStdLogger silences zmq4's own log.Printf diagnostics (failed
// handshakes of bad peers); the server counts and logs those itself.
func discardStdLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// drainClosed works around a zmq4 v0.17.0 leak: a connection's reader
// goroutine that holds a message when the socket closes stays blocked
// forever on an unbuffered channel send. Recv on the closed socket picks
// at random between "closed" and that pending message, so calling it a
// bounded number of times unblocks every such goroutine (each then sees the
// closed connection and exits). Call it only once nothing else calls Recv.
func drainClosed(sock zmq4.Socket) {
	for range 256 {
		sock.Recv()
	}
}
