package filemq

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// TestStalledClientRebind grants a large credit from a client that never
// reads. Once the socket buffers fill, the server's write blocks; the
// watchdog must rebind the socket so that other clients are served.
func TestStalledClientRebind(t *testing.T) {
	t.Parallel() // mostly waits for the watchdog
	src := fastDir(t)
	writeRandom(t, filepath.Join(src, "big"), 40<<20, 3) // more than socket buffers hold
	cfg := DefaultServerConfig()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.StableAge = 0
	cfg.SendTimeout = 300 * time.Millisecond
	cfg.Logger = testLogger(t)
	s, err := NewServer(cfg)
	mustNot(t, err)
	defer s.Close()
	mustNot(t, s.Publish(src, "/"))

	// A DEALER nobody reads from: zmq4 stops reading its TCP connection
	// once its internal queue is full.
	stuck := zmq4.NewDealer(context.Background(), zmq4.WithLogger(discardStdLogger()))
	defer func() { stuck.Close(); drainClosed(stuck) }()
	mustNot(t, stuck.Dial(s.Endpoint()))
	for _, m := range []Msg{{Cmd: CmdOHAI}, {Cmd: CmdICANHAZ, Path: "/", Options: map[string]string{optResync: "1"}}, {Cmd: CmdNOM, Credit: 1 << 30}} {
		b, _ := m.Encode(nil)
		mustNot(t, stuck.Send(zmq4.NewMsg(b)))
	}
	waitFor(t, 30*time.Second, "the watchdog to rebind", func() bool {
		st, err := s.Stats()
		mustNot(t, err)
		return st.Restarts >= 1
	})

	inbox := fastDir(t)
	c := testClient(t, inbox)
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(s.Endpoint()))
	waitTree(t, 60*time.Second, "a good client to be served after the rebind", inbox, treeHashes(t, src), treeSizes(t, src))
}
