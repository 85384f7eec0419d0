package logpub

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
)

// DefaultWriterEndpoint is where a Writer sends and a Hub listens for local
// writers when nothing is configured, so that apps need no configuration.
// LOGPUB_ENDPOINT overrides it for the Writer.
const DefaultWriterEndpoint = "tcp://127.0.0.1:5680"

// splitEndpoint turns "tcp://host:port" or "ipc:///path" into a Go network
// and address. Endpoints keep the ZeroMQ spelling used across the mesh.
func splitEndpoint(ep string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(ep, "tcp://"):
		addr = strings.TrimPrefix(ep, "tcp://")
		if strings.HasPrefix(addr, "*:") {
			addr = "0.0.0.0" + addr[1:]
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", "", fmt.Errorf("logpub: endpoint %q: %w", ep, err)
		}
		return "tcp", addr, nil
	case strings.HasPrefix(ep, "ipc://"):
		addr = strings.TrimPrefix(ep, "ipc://")
		if addr == "" {
			return "", "", fmt.Errorf("logpub: endpoint %q: empty path", ep)
		}
		return "unix", addr, nil
	}
	return "", "", fmt.Errorf("logpub: endpoint %q: want tcp://host:port or ipc://path", ep)
}

// listen binds an endpoint and returns the listener and its actual endpoint
// (with the port chosen by the kernel when port 0 was asked).
func listen(ep string) (net.Listener, string, error) {
	network, addr, err := splitEndpoint(ep)
	if err != nil {
		return nil, "", err
	}
	if network == "unix" {
		// A stale socket file from a killed process would make Listen fail.
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", addr); err == nil {
				c.Close()
				return nil, "", fmt.Errorf("logpub: listen %s: already in use", ep)
			}
			os.Remove(addr)
		}
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, "", fmt.Errorf("logpub: listen %s: %w", ep, err)
	}
	if network == "unix" {
		return l, ep, nil
	}
	return l, "tcp://" + l.Addr().String(), nil
}

func dial(ctx context.Context, ep string) (net.Conn, error) {
	network, addr, err := splitEndpoint(ep)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("logpub: dial %s: %w", ep, err)
	}
	return c, nil
}
