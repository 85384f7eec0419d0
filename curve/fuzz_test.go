package curve

import (
	"bytes"
	"errors"
	"testing"

	"github.com/go-zeromq/zmq4"
)

// fuzzState is a handshake stopped at each step, built deterministically.
type fuzzState struct {
	p                         *pair
	hello, welcome, initiate  []byte
	ready                     []byte
	afterHello, afterInitiate serverHandshake
	clientAfterInit           clientHandshake
	cliSess, srvSess          *session
	message                   []byte
}

func newFuzzState(f *testing.F) *fuzzState {
	f.Helper()
	s := &fuzzState{p: newPair(f, 42)}
	var err error
	s.hello = s.p.client.hello()
	if s.welcome, err = s.p.server.welcome(s.hello); err != nil {
		f.Fatal(err)
	}
	s.afterHello = *s.p.server
	if s.initiate, err = s.p.client.initiate(s.welcome, []byte("\x0bSocket-Type\x00\x00\x00\x06DEALER"), detRand(43)); err != nil {
		f.Fatal(err)
	}
	s.clientAfterInit = *s.p.client
	if _, _, err = s.p.server.initiate(s.initiate); err != nil {
		f.Fatal(err)
	}
	s.afterInitiate = *s.p.server
	s.ready, s.srvSess = s.p.server.ready([]byte("\x0bSocket-Type\x00\x00\x00\x06ROUTER"))
	if _, s.cliSess, err = s.p.client.ready(s.ready); err != nil {
		f.Fatal(err)
	}
	if s.message, err = s.cliSess.seal(nil, []byte("\x01payload")); err != nil {
		f.Fatal(err)
	}
	return s
}

// addMutations seeds the corpus with a valid command and broken variants.
func addMutations(f *testing.F, valid []byte) {
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid), 0))
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x80
	f.Add(flipped)
	f.Add(valid[:1])
	f.Add([]byte{})
	f.Add([]byte("\xffHELLO"))
}

func FuzzHello(f *testing.F) {
	s := newFuzzState(f)
	addMutations(f, s.hello)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		srv := s.afterHello
		w, err := srv.welcome(cmd)
		if err == nil && len(w) != welcomeSize {
			t.Fatalf("WELCOME of %d bytes", len(w))
		}
		if err == nil && !bytes.Equal(cmd, s.hello) && !bytes.Equal(cmd[80:], s.hello[80:]) {
			t.Fatalf("forged HELLO accepted: %x", cmd)
		}
	})
}

func FuzzWelcome(f *testing.F) {
	s := newFuzzState(f)
	addMutations(f, s.welcome)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		cli := s.clientAfterInit
		cli.nonce = 1
		if _, err := cli.initiate(cmd, nil, detRand(1)); err == nil && !bytes.Equal(cmd, s.welcome) {
			t.Fatalf("forged WELCOME accepted: %x", cmd)
		}
	})
}

func FuzzInitiate(f *testing.F) {
	s := newFuzzState(f)
	addMutations(f, s.initiate)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		srv := s.afterHello
		if _, _, err := srv.initiate(cmd); err == nil && !bytes.Equal(cmd, s.initiate) {
			t.Fatalf("forged INITIATE accepted: %x", cmd)
		}
	})
}

func FuzzReady(f *testing.F) {
	s := newFuzzState(f)
	addMutations(f, s.ready)
	addMutations(f, encodeError("not authorized"))
	f.Fuzz(func(t *testing.T, cmd []byte) {
		cli := s.clientAfterInit
		_, sess, err := cli.ready(cmd)
		if err == nil && (sess == nil || !bytes.Equal(cmd, s.ready)) {
			t.Fatalf("forged READY accepted: %x", cmd)
		}
		if hasName(cmd, cmdError) && err != nil && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("ERROR: %v", err)
		}
	})
}

func FuzzMessage(f *testing.F) {
	s := newFuzzState(f)
	addMutations(f, s.message)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		sess := *s.srvSess
		out, err := sess.open(nil, cmd)
		if err == nil && (!bytes.Equal(cmd, s.message) || string(out) != "\x01payload") {
			t.Fatalf("forged MESSAGE accepted: %x -> %q", cmd, out)
		}
		if err != nil && sess.recvNonce != s.srvSess.recvNonce {
			t.Fatal("a rejected MESSAGE moved the replay window")
		}
	})
}

// FuzzMetadata also checks that metadata parseMetadata accepts never
// panics zmq4's own parser, which finish hands it to.
func FuzzMetadata(f *testing.F) {
	f.Add([]byte("\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00"))
	f.Add([]byte("\x0bSocket-Type\x00\x00\x00\x07DEALER"))
	f.Add([]byte("\x05Ident"))
	f.Add([]byte("\x01a\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		props, err := parseMetadata(b)
		if err != nil {
			return
		}
		md := make(zmq4.Metadata)
		if err := md.UnmarshalZMTP(b); err != nil {
			t.Fatalf("zmq4 refuses metadata we accept: %v", err)
		}
		if len(md) > len(props) {
			t.Fatalf("zmq4 sees %d properties, we see %d", len(md), len(props))
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c'})
	f.Add([]byte{flagCommand | flagLong, 0, 0, 0, 0, 0, 0, 0, 1, 'x'})
	f.Add([]byte{flagLong, 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x80, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, body, err := readFrame(bytes.NewReader(b), nil, 1<<16)
		if err != nil {
			return
		}
		again := append(appendFrameHeader(nil, flags&^flagLong, len(body)), body...)
		if len(body) > 255 && !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("frame %x re-encodes as %x", b, again)
		}
	})
}

func FuzzCert(f *testing.F) {
	f.Add([]byte("metadata\ncurve\n    public-key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"))
	f.Add([]byte("curve\n    public-key = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'\n    secret-key = \"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\"\n"))
	f.Add([]byte("# comment only\n"))
	f.Add([]byte("public-key = \"short\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, sec, err := parseCert(b)
		if err != nil {
			return
		}
		if pub == "" && sec == "" || pub != "" && len(pub) != KeyTextSize || sec != "" && len(sec) != KeyTextSize {
			t.Fatalf("accepted public %q secret %q", pub, sec)
		}
	})
}
