package netns

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Cable is a host's link to the bridge carried through the test process:
// the host's eth0 and its bridge port are TAP devices, and the process
// copies Ethernet frames between them. It stands in for `tc netem` on
// kernels without sch_netem: SetDelay holds every frame the host sends,
// as `tc qdisc add dev eth0 root netem delay D` would on the host.
//
// A cable holds at most queueLimit frames in flight; beyond that frames
// are dropped (and counted), like netem's default limit of 1000 packets.
type Cable struct {
	host, port *os.File // the host's eth0 and the bridge port
	delay      atomic.Int64
	lossPct    atomic.Int64
	sent       atomic.Uint64 // frames the host sent through the cable
	dropped    atomic.Uint64 // of those, dropped (loss or full queue)
	queue      chan frame
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// frame is one Ethernet frame on its way out of the host, due at a time.
type frame struct {
	due  time.Time
	data []byte
}

const (
	queueLimit = 1000
	maxFrame   = 64 << 10 // TAP frames are MTU-sized; this is ample
)

// SetDelay makes every frame the host sends from now on arrive d later.
func (c *Cable) SetDelay(d time.Duration) { c.delay.Store(int64(d)) }

// SetLoss makes the cable drop pct% of the frames the host sends, at
// random.
func (c *Cable) SetLoss(pct int) { c.lossPct.Store(int64(pct)) }

// Stats returns the frames the host sent through the cable and how many
// of them were dropped.
func (c *Cable) Stats() (sent, dropped uint64) { return c.sent.Load(), c.dropped.Load() }

// openTAP creates a TAP device called name in the network namespace of the
// calling thread and returns its file, non-blocking so Close ends a Read.
func openTAP(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("netns: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns: tap %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns: create tap %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// newCable creates the two TAP devices, hostIface in namespace hostNS and
// port in namespace switchNS, and starts copying between them.
func newCable(hostNS, hostIface, switchNS, port string) (*Cable, error) {
	c := &Cable{queue: make(chan frame, queueLimit)}
	var err error
	if err = doIn(hostNS, func() (err error) { c.host, err = openTAP(hostIface); return err }); err != nil {
		return nil, err
	}
	if err = doIn(switchNS, func() (err error) { c.port, err = openTAP(port); return err }); err != nil {
		c.host.Close()
		return nil, err
	}
	c.wg.Add(3)
	go c.egress()
	go c.deliver()
	go func() { // the bridge to the host: no impairment
		defer c.wg.Done()
		copyFrames(c.host, c.port)
	}()
	return c, nil
}

// egress reads what the host sends and queues it with its due time.
func (c *Cable) egress() {
	defer c.wg.Done()
	defer close(c.queue)
	buf := make([]byte, maxFrame)
	for {
		n, err := c.host.Read(buf)
		if err != nil {
			return
		}
		c.sent.Add(1)
		if p := c.lossPct.Load(); p > 0 && rand.Int64N(100) < p {
			c.dropped.Add(1)
			continue
		}
		f := frame{due: time.Now().Add(time.Duration(c.delay.Load())), data: append([]byte(nil), buf[:n]...)}
		select {
		case c.queue <- f:
		default:
			c.dropped.Add(1)
		}
	}
}

// deliver writes queued frames to the bridge port when they are due.
func (c *Cable) deliver() {
	defer c.wg.Done()
	for f := range c.queue {
		if d := time.Until(f.due); d > 0 {
			time.Sleep(d) // the frame's delay: what the cable is for
		}
		if _, err := c.port.Write(f.data); err != nil && errors.Is(err, os.ErrClosed) {
			for range c.queue { // drain so egress never blocks
			}
			return
		}
	}
}

// copyFrames copies frames from src to dst until either is closed.
func copyFrames(dst io.Writer, src io.Reader) {
	buf := make([]byte, maxFrame)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil && errors.Is(err, os.ErrClosed) {
			return
		}
	}
}

// Close removes both devices and stops the copying.
func (c *Cable) Close() {
	c.closeOnce.Do(func() {
		c.host.Close()
		c.port.Close()
		c.wg.Wait()
	})
}
