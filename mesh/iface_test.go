package mesh

import (
	"net"
	"testing"
)

func TestPickInterface(t *testing.T) {
	lo, err := pickInterface("lo")
	if err != nil {
		t.Fatal(err)
	}
	if !lo.ip.Equal(net.IPv4(127, 0, 0, 1)) || !lo.broadcast.Equal(net.IPv4(127, 255, 255, 255)) {
		t.Fatalf("lo = %v / %v", lo.ip, lo.broadcast)
	}
	if _, err := pickInterface("no-such-if0"); err == nil {
		t.Fatal("an unknown interface was accepted")
	}
	def, err := pickInterface("")
	if err != nil || def.ip.To4() == nil || def.broadcast.To4() == nil {
		t.Fatalf("default interface: %v, %v", def, err)
	}
}

func TestAdvertisedEndpoint(t *testing.T) {
	ip := net.IPv4(10, 0, 0, 5)
	for _, c := range []struct{ advertise, want string }{
		{"", "tcp://10.0.0.5:4000"},
		{"node.example", "tcp://node.example:4000"},
		{"203.0.113.9:5000", "tcp://203.0.113.9:5000"},
	} {
		if got := advertisedEndpoint(c.advertise, ip, 4000); got != c.want {
			t.Errorf("advertise %q: %s, want %s", c.advertise, got, c.want)
		}
	}
}
