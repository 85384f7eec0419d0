package curve

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
)

// Errors of the CurveZMQ handshake and message layer, for errors.Is.
var (
	// ErrAuth reports a box that does not open: wrong key, tampered data.
	ErrAuth = errors.New("curve: authentication failed")
	// ErrReplay reports a MESSAGE whose nonce is not above the last one.
	ErrReplay = errors.New("curve: replayed or reordered message")
	// ErrUnauthorized reports a client key refused by the server's Authorize.
	ErrUnauthorized = errors.New("curve: client key not authorized")
	// ErrRefused reports an ERROR command received from the peer.
	ErrRefused = errors.New("curve: refused by peer")
)

// Nonce prefixes of RFC 26.
const (
	prefixHello    = "CurveZMQHELLO---"
	prefixWelcome  = "WELCOME-"
	prefixCookie   = "COOKIE--"
	prefixInitiate = "CurveZMQINITIATE"
	prefixVouch    = "VOUCH---"
	prefixReady    = "CurveZMQREADY---"
	prefixMessageC = "CurveZMQMESSAGEC"
	prefixMessageS = "CurveZMQMESSAGES"
)

func shortNonce(prefix string, n uint64) *[24]byte {
	var nonce [24]byte
	copy(nonce[:], prefix)
	binary.BigEndian.PutUint64(nonce[16:], n)
	return &nonce
}

func longNonce(prefix string, b []byte) *[24]byte {
	var nonce [24]byte
	copy(nonce[:], prefix)
	copy(nonce[8:], b)
	return &nonce
}

// session holds the keys and nonces of an established connection: the
// MESSAGE layer of RFC 26.
type session struct {
	key        [32]byte // precomputed from the short-term keys
	sendPrefix string
	recvPrefix string
	sendNonce  uint64 // last nonce sent
	recvNonce  uint64 // last nonce accepted
}

func newSession(peerShort *PublicKey, ownShort *SecretKey, server bool, sent, received uint64) *session {
	s := &session{sendPrefix: prefixMessageC, recvPrefix: prefixMessageS, sendNonce: sent, recvNonce: received}
	if server {
		s.sendPrefix, s.recvPrefix = prefixMessageS, prefixMessageC
	}
	box.Precompute(&s.key, (*[32]byte)(peerShort), (*[32]byte)(ownShort))
	return s
}

// seal appends to dst the MESSAGE command that carries plain, whose first
// byte is the MESSAGE flags (MORE, COMMAND) and the rest the frame body.
func (s *session) seal(dst, plain []byte) ([]byte, error) {
	if s.sendNonce == ^uint64(0) {
		return dst, fmt.Errorf("curve: message nonce exhausted")
	}
	s.sendNonce++
	dst = append(dst, cmdMessage...)
	dst = binary.BigEndian.AppendUint64(dst, s.sendNonce)
	return box.SealAfterPrecomputation(dst, plain, shortNonce(s.sendPrefix, s.sendNonce), &s.key), nil
}

// open checks and decrypts a MESSAGE command, appending flags and body to
// dst. Nonces must strictly increase: a replayed or reordered MESSAGE fails.
func (s *session) open(dst, cmd []byte) ([]byte, error) {
	m, err := decodeMessage(cmd)
	if err != nil {
		return dst, err
	}
	if m.nonce <= s.recvNonce {
		return dst, fmt.Errorf("%w: nonce %d after %d", ErrReplay, m.nonce, s.recvNonce)
	}
	out, ok := box.OpenAfterPrecomputation(dst, m.box, shortNonce(s.recvPrefix, m.nonce), &s.key)
	if !ok {
		return dst, fmt.Errorf("%w: MESSAGE %d", ErrAuth, m.nonce)
	}
	s.recvNonce = m.nonce
	return out, nil
}

// clientHandshake is the client side of the CurveZMQ handshake.
type clientHandshake struct {
	long        KeyPair
	server      PublicKey // S
	short       KeyPair   // C', c'
	nonce       uint64    // last short nonce sent
	serverShort PublicKey // S', from WELCOME
}

func newClientHandshake(long KeyPair, server PublicKey, r io.Reader) (*clientHandshake, error) {
	short, err := generateKeyPair(r)
	if err != nil {
		return nil, err
	}
	return &clientHandshake{long: long, server: server, short: short}, nil
}

func (c *clientHandshake) hello() []byte {
	c.nonce++
	var zeros [64]byte
	sig := box.Seal(nil, zeros[:], shortNonce(prefixHello, c.nonce), (*[32]byte)(&c.server), (*[32]byte)(&c.short.Secret))
	return encodeHello(hello{clientShort: c.short.Public, nonce: c.nonce, signature: sig})
}

// initiate reads WELCOME and returns INITIATE carrying metadata.
func (c *clientHandshake) initiate(cmd, metadata []byte, r io.Reader) ([]byte, error) {
	w, err := decodeWelcome(cmd)
	if err != nil {
		return nil, err
	}
	plain, ok := box.Open(nil, w.box, longNonce(prefixWelcome, w.nonce[:]), (*[32]byte)(&c.server), (*[32]byte)(&c.short.Secret))
	if !ok {
		return nil, fmt.Errorf("%w: WELCOME does not open with server key %s", ErrAuth, c.server)
	}
	copy(c.serverShort[:], plain[:KeySize])
	cookie := plain[KeySize:]

	var vn [longNonceSz]byte
	if _, err := io.ReadFull(r, vn[:]); err != nil {
		return nil, fmt.Errorf("curve: vouch nonce: %w", err)
	}
	vouch := append([]byte{}, vn[:]...)
	vouch = box.Seal(vouch, append(c.short.Public[:], c.server[:]...), longNonce(prefixVouch, vn[:]),
		(*[32]byte)(&c.serverShort), (*[32]byte)(&c.long.Secret))

	body := make([]byte, 0, KeySize+len(vouch)+len(metadata))
	body = append(body, c.long.Public[:]...)
	body = append(body, vouch...)
	body = append(body, metadata...)
	c.nonce++
	sealed := box.Seal(nil, body, shortNonce(prefixInitiate, c.nonce), (*[32]byte)(&c.serverShort), (*[32]byte)(&c.short.Secret))
	return encodeInitiate(initiate{cookie: cookie, nonce: c.nonce, box: sealed}), nil
}

// ready reads READY (or ERROR) and returns the server's metadata and the
// established session.
func (c *clientHandshake) ready(cmd []byte) ([]byte, *session, error) {
	if hasName(cmd, cmdError) {
		reason, err := decodeError(cmd)
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %q", ErrRefused, reason)
	}
	rd, err := decodeReady(cmd)
	if err != nil {
		return nil, nil, err
	}
	meta, ok := box.Open(nil, rd.box, shortNonce(prefixReady, rd.nonce), (*[32]byte)(&c.serverShort), (*[32]byte)(&c.short.Secret))
	if !ok {
		return nil, nil, fmt.Errorf("%w: READY", ErrAuth)
	}
	return meta, newSession(&c.serverShort, &c.short.Secret, false, c.nonce, rd.nonce), nil
}

// cookieKeys is the server's minute key (RFC 26): cookies made with it stay
// valid for one to two minutes.
type cookieKeys struct {
	mu      sync.Mutex
	now     func() time.Time
	rand    io.Reader
	cur     [32]byte
	prev    [32]byte
	curFrom time.Time
	hasPrev bool
}

func (k *cookieKeys) keys() (cur, prev *[32]byte, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if k.curFrom.IsZero() || now.Sub(k.curFrom) >= time.Minute {
		k.prev, k.hasPrev = k.cur, !k.curFrom.IsZero() && now.Sub(k.curFrom) < 2*time.Minute
		if _, err := io.ReadFull(k.rand, k.cur[:]); err != nil {
			return nil, nil, fmt.Errorf("curve: new cookie key: %w", err)
		}
		k.curFrom = now
	}
	c := k.cur
	if !k.hasPrev {
		return &c, nil, nil
	}
	p := k.prev
	return &c, &p, nil
}

// serverHandshake is the server side of the CurveZMQ handshake.
type serverHandshake struct {
	long        KeyPair
	cookies     *cookieKeys
	rand        io.Reader
	clientShort PublicKey // C'
	short       KeyPair   // S', s'
	client      PublicKey // C, after INITIATE
	peerNonce   uint64
}

// welcome checks HELLO and returns WELCOME.
func (s *serverHandshake) welcome(cmd []byte) ([]byte, error) {
	h, err := decodeHello(cmd)
	if err != nil {
		return nil, err
	}
	zeros, ok := box.Open(nil, h.signature, shortNonce(prefixHello, h.nonce), (*[32]byte)(&h.clientShort), (*[32]byte)(&s.long.Secret))
	if !ok || subtle.ConstantTimeCompare(zeros, make([]byte, 64)) != 1 {
		return nil, fmt.Errorf("%w: HELLO signature (client uses another server key?)", ErrAuth)
	}
	s.clientShort = h.clientShort
	if s.short, err = generateKeyPair(s.rand); err != nil {
		return nil, err
	}
	cur, _, err := s.cookies.keys()
	if err != nil {
		return nil, err
	}
	var nonces [2 * longNonceSz]byte
	if _, err := io.ReadFull(s.rand, nonces[:]); err != nil {
		return nil, fmt.Errorf("curve: welcome nonce: %w", err)
	}
	cookie := append([]byte{}, nonces[:longNonceSz]...)
	cookie = secretbox.Seal(cookie, append(s.clientShort[:], s.short.Secret[:]...), longNonce(prefixCookie, nonces[:longNonceSz]), cur)

	var w welcome
	copy(w.nonce[:], nonces[longNonceSz:])
	w.box = box.Seal(nil, append(s.short.Public[:], cookie...), longNonce(prefixWelcome, w.nonce[:]),
		(*[32]byte)(&s.clientShort), (*[32]byte)(&s.long.Secret))
	return encodeWelcome(w), nil
}

// initiate checks INITIATE (cookie, box, vouch) and returns the client's
// long-term key and its metadata.
func (s *serverHandshake) initiate(cmd []byte) (PublicKey, []byte, error) {
	in, err := decodeInitiate(cmd)
	if err != nil {
		return PublicKey{}, nil, err
	}
	cur, prev, err := s.cookies.keys()
	if err != nil {
		return PublicKey{}, nil, err
	}
	cn := longNonce(prefixCookie, in.cookie[:longNonceSz])
	plain, ok := secretbox.Open(nil, in.cookie[longNonceSz:], cn, cur)
	if !ok && prev != nil {
		plain, ok = secretbox.Open(nil, in.cookie[longNonceSz:], cn, prev)
	}
	if !ok {
		return PublicKey{}, nil, fmt.Errorf("%w: INITIATE cookie (expired or forged)", ErrAuth)
	}
	if subtle.ConstantTimeCompare(plain[:KeySize], s.clientShort[:]) != 1 ||
		subtle.ConstantTimeCompare(plain[KeySize:], s.short.Secret[:]) != 1 {
		return PublicKey{}, nil, fmt.Errorf("%w: INITIATE cookie is not this connection's", ErrAuth)
	}
	body, ok := box.Open(nil, in.box, shortNonce(prefixInitiate, in.nonce), (*[32]byte)(&s.clientShort), (*[32]byte)(&s.short.Secret))
	if !ok {
		return PublicKey{}, nil, fmt.Errorf("%w: INITIATE box", ErrAuth)
	}
	var client PublicKey
	copy(client[:], body[:KeySize])
	vouch := body[KeySize : KeySize+vouchSize]
	vplain, ok := box.Open(nil, vouch[longNonceSz:], longNonce(prefixVouch, vouch[:longNonceSz]), (*[32]byte)(&client), (*[32]byte)(&s.short.Secret))
	if !ok {
		return PublicKey{}, nil, fmt.Errorf("%w: INITIATE vouch of %s", ErrAuth, client)
	}
	if subtle.ConstantTimeCompare(vplain[:KeySize], s.clientShort[:]) != 1 ||
		subtle.ConstantTimeCompare(vplain[KeySize:], s.long.Public[:]) != 1 {
		return PublicKey{}, nil, fmt.Errorf("%w: INITIATE vouch of %s names other keys", ErrAuth, client)
	}
	s.client = client
	s.peerNonce = in.nonce
	return client, body[KeySize+vouchSize:], nil
}

// ready returns READY carrying metadata, and the established session.
func (s *serverHandshake) ready(metadata []byte) ([]byte, *session) {
	const nonce = 1
	sealed := box.Seal(nil, metadata, shortNonce(prefixReady, nonce), (*[32]byte)(&s.clientShort), (*[32]byte)(&s.short.Secret))
	return encodeNonceBox(cmdReady, nonceBox{nonce: nonce, box: sealed}),
		newSession(&s.clientShort, &s.short.Secret, true, nonce, s.peerNonce)
}

var defaultRand io.Reader = rand.Reader
