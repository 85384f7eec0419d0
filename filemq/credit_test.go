package filemq

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCreditBound plays a slow client that grants little credit and reads
// nothing more; the server must stop at exactly the credit, and resume by
// exactly the next grant.
func TestCreditBound(t *testing.T) {
	src := fastDir(t)
	writeRandom(t, filepath.Join(src, "big"), 8<<20, 1)
	s := testServer(t)
	mustNot(t, s.Publish(src, "/"))
	waitFor(t, 10*time.Second, "the file to be published", func() bool {
		st, _ := s.Stats()
		return st.Files == 1
	})

	c := rawDealer(t, s.Endpoint())
	c.send(Msg{Cmd: CmdOHAI})
	c.expect(CmdOHAIOK)
	c.send(Msg{Cmd: CmdICANHAZ, Path: "/", Options: map[string]string{optResync: "1"}})
	c.expect(CmdICANHAZOK)
	const grant = 600 << 10 // not a multiple of the 256 KiB chunk
	c.send(Msg{Cmd: CmdNOM, Credit: grant})

	received := 0
	for received < grant {
		m := c.expect(CmdCHEEZBURGER)
		received += len(m.Chunk)
	}
	if received != grant {
		t.Fatalf("received %d bytes for a credit of %d", received, grant)
	}
	// Nothing more may come while no credit is granted.
	if m, ok := c.recv(300 * time.Millisecond); ok {
		t.Fatalf("server sent %v with %d bytes beyond the credit", m.Cmd, len(m.Chunk))
	}
	st, err := s.Stats()
	mustNot(t, err)
	if cs := st.Clients[0]; cs.Sent != grant || cs.Granted != grant || cs.Credit != 0 || cs.InFlight != grant {
		t.Fatalf("server view: %+v", cs)
	}

	c.send(Msg{Cmd: CmdNOM, Credit: 100})
	if m := c.expect(CmdCHEEZBURGER); len(m.Chunk) != 100 || m.Offset != grant {
		t.Fatalf("after NOM 100: chunk of %d bytes at %d", len(m.Chunk), m.Offset)
	}
	c.send(Msg{Cmd: CmdKTHXBAI})
	waitFor(t, 5*time.Second, "the client to be forgotten", func() bool {
		st, _ := s.Stats()
		return len(st.Clients) == 0
	})
}

// TestCreditRealClient ships with the real client and a small window while
// sampling the server: sent bytes never exceed granted bytes.
func TestCreditRealClient(t *testing.T) {
	src, inbox := fastDir(t), fastDir(t)
	writeRandom(t, filepath.Join(src, "f"), 16<<20, 2)
	s := testServer(t)
	mustNot(t, s.Publish(src, "/"))
	cfg := DefaultClientConfig(inbox)
	cfg.Credit = 512 << 10
	c, err := NewClient(cfg)
	mustNot(t, err)
	defer c.Close()
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(s.Endpoint()))
	samples := 0
	waitFor(t, 30*time.Second, "the file", func() bool {
		st, err := s.Stats()
		mustNot(t, err)
		for _, cs := range st.Clients {
			samples++
			if cs.Sent > cs.Granted {
				t.Fatalf("server sent %d bytes with %d granted", cs.Sent, cs.Granted)
			}
		}
		_, err = os.Stat(filepath.Join(inbox, "f"))
		return err == nil
	})
	t.Logf("%d samples", samples)
}
