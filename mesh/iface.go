package mesh

import (
	"fmt"
	"net"
	"strconv"
)

// netAddrs is what a node advertises and where its beacons go.
type netAddrs struct {
	ip        net.IP // advertised in HELLO and used to bind when Bind is unset
	broadcast net.IP // beacon destination
}

// pickInterface finds the advertised address and the directed broadcast
// address: of the named interface, else of the first up, non-loopback IPv4
// interface, else of loopback. It always takes the interface's first IPv4
// address, so a host with several addresses advertises a stable one.
func pickInterface(name string) (netAddrs, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return netAddrs{}, fmt.Errorf("mesh: list interfaces: %w", err)
	}
	var loop *netAddrs
	for _, ifc := range ifs {
		if name != "" && ifc.Name != name {
			continue
		}
		if ifc.Flags&net.FlagUp == 0 && name == "" {
			continue
		}
		a, ok := ipv4Of(ifc)
		if !ok {
			continue
		}
		if ifc.Flags&net.FlagLoopback != 0 && name == "" {
			if loop == nil {
				loop = &a
			}
			continue
		}
		return a, nil
	}
	if loop != nil {
		return *loop, nil
	}
	if name != "" {
		return netAddrs{}, fmt.Errorf("mesh: interface %q has no IPv4 address", name)
	}
	return netAddrs{ip: net.IPv4(127, 0, 0, 1), broadcast: net.IPv4(127, 255, 255, 255)}, nil
}

func ipv4Of(ifc net.Interface) (netAddrs, bool) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return netAddrs{}, false
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip4 := ipn.IP.To4()
		if ip4 == nil || ip4.IsLinkLocalUnicast() {
			continue
		}
		mask := ipn.Mask
		if len(mask) == 16 {
			mask = mask[12:]
		}
		bc := make(net.IP, 4)
		for i := range bc {
			bc[i] = ip4[i] | ^mask[i]
		}
		return netAddrs{ip: ip4, broadcast: bc}, true
	}
	return netAddrs{}, false
}

// advertisedEndpoint builds the mailbox endpoint peers should use.
// advertise may be empty, a host, or host:port.
func advertisedEndpoint(advertise string, ip net.IP, port int) string {
	if advertise == "" {
		return "tcp://" + net.JoinHostPort(ip.String(), strconv.Itoa(port))
	}
	if _, _, err := net.SplitHostPort(advertise); err == nil {
		return "tcp://" + advertise
	}
	return "tcp://" + net.JoinHostPort(advertise, strconv.Itoa(port))
}
