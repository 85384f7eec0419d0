package filemq

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/curvetest"
)

type testKeys struct{ srv, cli, other curve.KeyPair }

func genKeys(t testing.TB) testKeys {
	t.Helper()
	k := curvetest.KeyPairs(t, 3)
	return testKeys{srv: k[0], cli: k[1], other: k[2]}
}

// keyedServer publishes src with CURVE keys srv, admitting the client keys.
func keyedServer(t testing.TB, src string, srv *curve.KeyPair, admit ...curve.PublicKey) *Server {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.PollInterval, cfg.StableAge, cfg.ChunkSize, cfg.Logger = 50*time.Millisecond, 0, 256<<10, testLogger(t)
	if srv != nil {
		cfg.Keys, cfg.Authorize = srv, curve.NewAllowList(admit...).Authorize
	}
	s, err := NewServer(cfg)
	mustNot(t, err)
	t.Cleanup(func() { s.Close() })
	mustNot(t, s.Publish(src, "/"))
	return s
}

// keyedClient subscribes to everything of the server at ep; with keys
// set, as a CURVE client expecting server key serverKey.
func keyedClient(t testing.TB, inbox, ep string, keys *curve.KeyPair, serverKey curve.PublicKey) *Client {
	t.Helper()
	cfg := DefaultClientConfig(inbox)
	cfg.Heartbeat, cfg.Timeout, cfg.Logger = 100*time.Millisecond, 2*time.Second, testLogger(t)
	cfg.Keys, cfg.ServerKey = keys, serverKey
	c, err := NewClient(cfg)
	mustNot(t, err)
	t.Cleanup(func() { c.Close() })
	mustNot(t, c.Subscribe("/"))
	mustNot(t, c.Connect(ep))
	return c
}

func TestCurveShipsByteIdentical(t *testing.T) {
	k := genKeys(t)
	src, inbox := fastDir(t), fastDir(t)
	writeRandom(t, filepath.Join(src, "api/api-1.log.gz"), 3<<20+17, 1)
	writeRandom(t, filepath.Join(src, "db/db-1.log"), 1000, 2)
	s := keyedServer(t, src, &k.srv, k.cli.Public)
	c := keyedClient(t, inbox, s.Endpoint(), &k.cli, k.srv.Public)
	waitTree(t, 30*time.Second, "the tree over CURVE", inbox, treeHashes(t, src), treeSizes(t, src))
	st, err := s.Stats()
	mustNot(t, err)
	if st.Refused != 0 || c.Stats().Refused != 0 {
		t.Fatalf("refusals: server %d, client %d", st.Refused, c.Stats().Refused)
	}
}

// Every mismatch of keys or mechanism is refused by both ends, counted,
// and ships nothing; the server keeps serving a client with the right key.
func TestCurveRefusals(t *testing.T) {
	k := genKeys(t)
	cases := []struct {
		name       string
		serverKeys bool
		cliKeys    *curve.KeyPair
		serverKey  curve.PublicKey
		clientSide bool // the client counts the refusal too
	}{
		{"null client, keyed server", true, nil, curve.PublicKey{}, true},
		{"unadmitted client key", true, &k.other, k.srv.Public, true},
		{"client expects another server key", true, &k.cli, k.other.Public, true},
		{"keyed client, null server", false, &k.cli, k.srv.Public, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, inbox := fastDir(t), fastDir(t)
			writeRandom(t, filepath.Join(src, "a.log"), 5000, 3)
			var srvKeys *curve.KeyPair
			if tc.serverKeys {
				srvKeys = &k.srv
			}
			s := keyedServer(t, src, srvKeys, k.cli.Public)
			c := keyedClient(t, inbox, s.Endpoint(), tc.cliKeys, tc.serverKey)
			waitFor(t, 10*time.Second, "the refusal counted on both ends", func() bool {
				st, err := s.Stats()
				mustNot(t, err)
				return st.Refused >= 2 && (!tc.clientSide || c.Stats().Refused >= 2)
			})
			if got := treeSizes(t, inbox); len(got) != 0 {
				t.Fatalf("refused client received %v", got)
			}
			if cs := c.Stats(); cs.Connected || cs.Sessions != 0 {
				t.Fatalf("refused client stats %+v", cs)
			}
			if !tc.serverKeys {
				return
			}
			good := fastDir(t)
			keyedClient(t, good, s.Endpoint(), &k.cli, k.srv.Public)
			waitTree(t, 20*time.Second, "the tree for the admitted client", good, treeHashes(t, src), treeSizes(t, src))
		})
	}
}
