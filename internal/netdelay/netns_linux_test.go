package netdelay

import (
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// newNamespace makes a namespace deleted when the test ends.
func newNamespace(t *testing.T, tag string) *Namespace {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	n, err := NewNamespace(fmt.Sprintf("ndtest-%d-%s", os.Getpid(), tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// TestProxyBetweenNamespaces puts a site in each of two namespaces: B's
// echo server is reachable from A only through A's proxy, at the same
// address, with the proxy's delay.
func TestProxyBetweenNamespaces(t *testing.T) {
	a, b := newNamespace(t, "a"), newNamespace(t, "b")
	ln, err := b.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	addr := ln.Addr().String()
	// Nothing listens on addr in A yet.
	if c, err := a.DialTCP(addr)(t.Context()); err == nil {
		c.Close()
		t.Fatal("B's listener is reachable from A without a proxy")
	}
	front, err := a.ListenTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Forward, cfg.Back = Shape{Delay: 10 * time.Millisecond}, Shape{Delay: 10 * time.Millisecond}
	p, err := StartProxy(cfg, front, b.DialTCP(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := a.DialTCP(addr)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rtt, err := roundTrip(c, []byte("ping"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 20*time.Millisecond {
		t.Errorf("round trip %v through the proxy, below the configured 20ms", rtt)
	}
	// The test's own (root) namespace has no such listener either.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("B's listener is reachable from the root namespace")
	}
}
