package mesh

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
	"github.com/rs/zerolog"
)

// peer is what the actor knows of one remote node.
type peer struct {
	id       uuid.UUID
	endpoint string
	name     string
	headers  map[string]string
	groups   map[string]bool
	status   byte
	ready    bool   // HELLO received: the peer has entered
	recvSeq  uint16 // sequence of the last message received
	sentSeq  uint16 // sequence of the last message sent
	out      *outbox
	key      *curve.PublicKey // CURVE public key; nil on a NULL mesh
	inSerial uint64           // the newest mailbox connection that carried its messages

	created   time.Time
	lastSeen  time.Time
	evasiveAt time.Time // when to PING next
	expiredAt time.Time
	pings     int // PINGs sent since the peer last showed life
}

func (p *peer) info() PeerInfo {
	info := PeerInfo{ID: p.id, Name: p.name, Endpoint: p.endpoint,
		Headers: maps.Clone(p.headers), LastSeen: p.lastSeen}
	if len(p.groups) > 0 {
		info.Groups = slices.Sorted(maps.Keys(p.groups))
	}
	return info
}

// outbox is the DEALER of one peer: a bounded queue of messages and the
// goroutine that connects to the peer's mailbox and writes them. The actor
// only ever enqueues without blocking, so a slow or dead peer cannot stall
// it. Like a libzmq DEALER, it reconnects when the connection breaks and
// keeps what is queued meanwhile.
type outbox struct {
	q      chan [][]byte
	cancel context.CancelFunc
}

const (
	dialTimeout = 3 * time.Second
	// handshakeTimeout is libzmq's default ZMQ_HANDSHAKE_IVL. A mailbox
	// that gave up sooner, after its peer had finished its own side of the
	// handshake, would lose the peer's first message: its HELLO.
	handshakeTimeout = 30 * time.Second
	minRedial        = 100 * time.Millisecond
	maxRedial        = 2 * time.Second
)

// dealer says how an outbox connects.
type dealer struct {
	endpoint     string // "tcp://host:port"
	identity     []byte // our routing id: 1 + our UUID
	queue        int
	writeTimeout time.Duration
	sec          *curve.Security // CURVE client for the peer's key; nil for NULL
	log          zerolog.Logger
	stats        *counters
}

// startOutbox starts the DEALER goroutine. It stops when ctx ends or close
// is called.
func startOutbox(ctx context.Context, wg *sync.WaitGroup, d dealer) *outbox {
	ctx, cancel := context.WithCancel(ctx)
	o := &outbox{q: make(chan [][]byte, d.queue), cancel: cancel}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.run(ctx, d)
	}()
	return o
}

// send queues a message; false means the queue was full and it was dropped.
func (o *outbox) send(frames [][]byte) bool {
	select {
	case o.q <- frames:
		return true
	default:
		return false
	}
}

func (o *outbox) close() { o.cancel() }

func (o *outbox) run(ctx context.Context, d dealer) {
	addr, ok := strings.CutPrefix(d.endpoint, "tcp://")
	if !ok {
		d.log.Warn().Str("endpoint", d.endpoint).Msg("mesh: peer endpoint is not tcp://, not connecting")
		<-ctx.Done()
		return
	}
	wait := minRedial
	for ctx.Err() == nil {
		conn, w, err := dialZMTP(ctx, addr, d)
		if err == nil {
			wait = minRedial
			err = o.pump(ctx, conn, w, d.writeTimeout)
			conn.Close()
		}
		if ctx.Err() != nil {
			return
		}
		d.log.Debug().Err(err).Str("endpoint", d.endpoint).Msg("mesh: peer connection failed, redialling")
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, maxRedial)
	}
}

func dialZMTP(ctx context.Context, addr string, d dealer) (net.Conn, *bufio.Writer, error) {
	dialer := net.Dialer{Timeout: dialTimeout}
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	var conn net.Conn = countedConn{nc, d.stats}
	if d.sec != nil {
		c, err := d.sec.Upgrade(ctx, conn, map[string]string{"Socket-Type": "DEALER", "Identity": string(d.identity)})
		if err != nil {
			d.stats.refused.Add(1)
			return nil, nil, fmt.Errorf("CURVE handshake with %s: %w", addr, err)
		}
		if t := c.PeerMetadata()["Socket-Type"]; t != "ROUTER" {
			c.Close()
			return nil, nil, fmt.Errorf("handshake with %s: peer socket is %q, want ROUTER", addr, t)
		}
		return c, bufio.NewWriterSize(c, 8<<10), nil
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	w := bufio.NewWriterSize(conn, 8<<10)
	_, ptype, err := zmtpHandshake(conn, bufio.NewReaderSize(conn, 512), w, "DEALER", d.identity, handshakeTimeout)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	if ptype != "ROUTER" {
		conn.Close()
		return nil, nil, fmt.Errorf("handshake with %s: peer socket is %q, want ROUTER", addr, ptype)
	}
	return conn, w, nil
}

// pump writes queued messages, batching whatever is queued into one flush.
func (o *outbox) pump(ctx context.Context, conn net.Conn, w *bufio.Writer, writeTimeout time.Duration) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		var msg [][]byte
		select {
		case msg = <-o.q:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return err
		}
		// Batch what is queued into one flush; the cap keeps the write
		// deadline meaningful under a steady stream.
		for n, more := 0, true; more; n++ {
			if err := writeMessage(w, msg); err != nil {
				return err
			}
			if n == 1024 {
				break
			}
			select {
			case msg = <-o.q:
				continue
			default:
			}
			// Give a sender that is mid-burst one chance to add to this
			// flush before paying for the write system call.
			runtime.Gosched()
			select {
			case msg = <-o.q:
			default:
				more = false
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}
