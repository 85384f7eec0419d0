package mesh

import (
	"net"
	"strings"
)

// Nodes advertise their service endpoints (X-LOGD-PUB, X-FILEMQ, X-HTTP,
// ...) in HELLO headers. A service bound on every interface cannot know
// which of its addresses a peer reaches, so it advertises the host "*" and
// each peer puts in the host of the node's mailbox endpoint, which the
// mesh already made reachable (interface, Config.Advertise).

// ServiceEndpoint returns what to advertise for a service bound on ep
// ("tcp://host:port" or "host:port"): a wildcard host (0.0.0.0, ::, empty)
// becomes "*"; anything else is returned as it is.
func ServiceEndpoint(ep string) string {
	scheme, host, port, ok := splitEndpoint(ep)
	if !ok {
		return ep
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return scheme + "*:" + port
	}
	return ep
}

// ResolveEndpoint turns a service endpoint a peer advertised into one to
// dial: a "*", empty or unspecified host is replaced with the host of the
// peer's mailbox endpoint. Other endpoints are returned as they are.
func ResolveEndpoint(advertised, mailbox string) string {
	scheme, host, port, ok := splitEndpoint(advertised)
	if !ok {
		return advertised
	}
	if ip := net.ParseIP(host); host != "" && host != "*" && (ip == nil || !ip.IsUnspecified()) {
		return advertised
	}
	_, mhost, _, ok := splitEndpoint(mailbox)
	if !ok || mhost == "" {
		return advertised
	}
	return scheme + net.JoinHostPort(mhost, port)
}

// splitEndpoint splits "tcp://host:port" or "host:port"; other schemes
// (ipc://, ...) are not network endpoints and give ok false.
func splitEndpoint(ep string) (scheme, host, port string, ok bool) {
	addr := ep
	if rest, found := strings.CutPrefix(ep, "tcp://"); found {
		scheme, addr = "tcp://", rest
	} else if strings.Contains(ep, "://") {
		return "", "", "", false
	}
	host, port, err := net.SplitHostPort(addr)
	return scheme, host, port, err == nil
}
