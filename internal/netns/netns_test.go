package netns

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestHostsReachEachOther(t *testing.T) {
	nw := New(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ln net.Listener
	if err := nw.Hosts[1].Do(func() (err error) {
		ln, err = net.Listen("tcp4", nw.Hosts[1].IP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi from h1"))
			c.Close()
		}
	}()
	var got []byte
	if err := nw.Hosts[0].Do(func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		got, err = io.ReadAll(c)
		return err
	}); err != nil || string(got) != "hi from h1" {
		t.Fatalf("h0 -> h1: %q, %v", got, err)
	}
	// The root namespace has no route to the hosts.
	if c, err := net.DialTimeout("tcp4", ln.Addr().String(), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the host namespace reached a test host")
	}
	out, err := nw.Hosts[1].Command(ctx, "ip", "-4", "addr", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), nw.Hosts[1].IP+"/24") || !strings.Contains(string(out), nw.Hosts[1].Broadcast) {
		t.Fatalf("eth0 of host 1: %v\n%s", err, out)
	}
}

func TestNamespacesAreDeleted(t *testing.T) {
	var names []string
	t.Run("create", func(t *testing.T) {
		nw := New(t, 1)
		names = []string{nw.Switch, nw.Hosts[0].NS}
	})
	if len(names) == 0 {
		t.Skip("namespaces unavailable")
	}
	list, err := listNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(list, n) {
			t.Errorf("namespace %s left after the test", n)
		}
	}
}
