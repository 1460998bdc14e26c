package testbin

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports are picked below the kernel's ephemeral range, which it hands out for
// "port 0" listeners and for the local end of every outgoing connection: a
// port picked there and freed again is soon taken by one of those, which is
// how a test's server once failed to bind ("address already in use").
const (
	portLow  = 20000 // the first port FreePort may pick
	portHigh = 32767 // the last, when the ephemeral range starts above it
)

var handed = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback address ("127.0.0.1:port") whose port is free
// for both TCP and UDP (gossip binds both) and lies below the kernel's
// ephemeral range, so no outgoing connection or "port 0" listener takes it
// before the caller binds it. It never returns the same port twice in one
// process. Another test process can still take it first; PortInUse tells,
// and the caller retries.
func FreePort() (string, error) {
	high := min(portHigh, ephemeralLow()-1)
	if high < portLow+1000 {
		return freeEphemeral()
	}
	for range 200 {
		port := portLow + rand.IntN(high-portLow+1)
		if !claim(port) {
			continue
		}
		if bindable(port) {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
	return freeEphemeral()
}

// claim records port as handed out; false when it was already.
func claim(port int) bool {
	handed.Lock()
	defer handed.Unlock()
	if handed.ports[port] {
		return false
	}
	handed.ports[port] = true
	return true
}

// bindable reports whether 127.0.0.1:port can be bound for TCP and UDP now.
func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return u.Close() == nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// freeEphemeral is the fallback: a port the kernel picked, free a moment ago.
func freeEphemeral() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("testbin: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Addr is FreePort for a test: it fails t when no port can be had.
func Addr(t testing.TB) string {
	t.Helper()
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Port is Addr's port number, for flags that take one.
func Port(t testing.TB) int {
	t.Helper()
	_, p, err := net.SplitHostPort(Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
