package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"
)

// Beacon sizes: "ZRE", version 1, the sender's UUID and its mailbox port
// (22 bytes); version 3, as Zyre sends with CURVE, adds the sender's
// 32-byte public key (54 bytes).
const (
	beaconSize   = 22
	beaconSizeV3 = beaconSize + 32
)

// beacon is a decoded ZRE discovery beacon. Port 0 means the sender leaves.
type beacon struct {
	ID     uuid.UUID
	Port   uint16
	HasKey bool     // a version 3 beacon
	Key    [32]byte // its CURVE public key
}

func (b beacon) encode() []byte {
	if !b.HasKey {
		p := make([]byte, beaconSize)
		copy(p, "ZRE\x01")
		copy(p[4:20], b.ID[:])
		binary.BigEndian.PutUint16(p[20:], b.Port)
		return p
	}
	p := make([]byte, beaconSizeV3)
	copy(p, "ZRE\x03")
	copy(p[4:20], b.ID[:])
	binary.BigEndian.PutUint16(p[20:], b.Port)
	copy(p[22:], b.Key[:])
	return p
}

func decodeBeacon(p []byte) (beacon, error) {
	if len(p) < 4 || string(p[:3]) != "ZRE" {
		return beacon{}, fmt.Errorf("%w: beacon of %d bytes without the ZRE header", ErrMalformed, len(p))
	}
	want := map[byte]int{1: beaconSize, 3: beaconSizeV3}[p[3]]
	if want == 0 {
		return beacon{}, fmt.Errorf("%w: beacon version %d", ErrMalformed, p[3])
	}
	if len(p) != want {
		return beacon{}, fmt.Errorf("%w: version %d beacon of %d bytes, want %d", ErrMalformed, p[3], len(p), want)
	}
	var b beacon
	copy(b.ID[:], p[4:20])
	b.Port = binary.BigEndian.Uint16(p[20:])
	if p[3] == 3 {
		b.HasKey = true
		copy(b.Key[:], p[22:])
	}
	return b, nil
}

// heard is a datagram received on the beacon port, with its source address.
type heard struct {
	data []byte
	from net.IP
}

// beaconNet sends and receives beacons. The UDP one is the real thing; tests
// with many nodes in one process may use an in-memory one.
type beaconNet interface {
	// send broadcasts one beacon.
	send(p []byte) error
	// run delivers received datagrams to out until ctx ends; it owns no
	// goroutine itself and returns when ctx ends.
	run(ctx context.Context, out chan<- heard)
	close() error
}

// udpBeacons broadcasts to a subnet broadcast address and listens on
// 0.0.0.0:port with SO_REUSEPORT, so several nodes share a host.
type udpBeacons struct {
	conn net.PacketConn
	to   *net.UDPAddr
}

func listenBeacons(port int, to net.IP) (*udpBeacons, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT, unix.SO_BROADCAST} {
				if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1); e != nil && serr == nil {
					serr = e
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("mesh: listen for beacons on UDP %d: %w", port, err)
	}
	return &udpBeacons{conn: conn, to: &net.UDPAddr{IP: to, Port: port}}, nil
}

func (u *udpBeacons) send(p []byte) error {
	_, err := u.conn.WriteTo(p, u.to)
	return err
}

func (u *udpBeacons) run(ctx context.Context, out chan<- heard) {
	stop := context.AfterFunc(ctx, func() { u.conn.Close() })
	defer stop()
	buf := make([]byte, 512)
	for {
		n, from, err := u.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, _ := from.(*net.UDPAddr)
		if ua == nil {
			continue
		}
		h := heard{data: append([]byte(nil), buf[:n]...), from: ua.IP}
		select {
		case out <- h:
		case <-ctx.Done():
			return
		}
	}
}

func (u *udpBeacons) close() error { return u.conn.Close() }
