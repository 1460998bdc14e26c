package netdelay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// Namespace is a named network namespace (`ip netns`) with nothing in it
// but its loopback: what runs inside reaches other namespaces only through
// the proxies and relays placed in it. Creating one needs root and
// iproute2's ip.
type Namespace struct {
	Name string
}

// NewNamespace creates namespace name (ip netns add) and brings its
// loopback up. Close deletes it.
func NewNamespace(name string) (*Namespace, error) {
	if _, err := testbin.Run(context.Background(), "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("netdelay: %w", err)
	}
	n := &Namespace{Name: name}
	if _, err := testbin.Run(context.Background(), "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(fmt.Errorf("netdelay: %s: lo up: %w", name, err), n.Close())
	}
	return n, nil
}

// Close deletes the namespace; processes still in it keep it alive until
// they exit.
func (n *Namespace) Close() error {
	if _, err := testbin.Run(context.Background(), "ip", "netns", "delete", n.Name); err != nil {
		return fmt.Errorf("netdelay: %w", err)
	}
	return nil
}

// Command returns the path and arguments that run bin with args inside the
// namespace (through ip netns exec, which execs bin: the process id is
// bin's).
func (n *Namespace) Command(bin string, args ...string) (path string, argv []string) {
	return "ip", append([]string{"netns", "exec", n.Name, bin}, args...)
}

// Do runs f on an operating-system thread that has entered the namespace,
// so the sockets f opens belong to it (they stay there whatever thread
// uses them later). f must not start goroutines that open sockets.
func (n *Namespace) Do(f func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", n.Name))
	if err != nil {
		return fmt.Errorf("netdelay: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netdelay: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netdelay: enter %s: %w", n.Name, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine rather than
		// run other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("netdelay: leave %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// ListenTCP listens on addr inside the namespace.
func (n *Namespace) ListenTCP(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err })
	return ln, err
}

// ListenUDP opens a UDP socket on addr inside the namespace.
func (n *Namespace) ListenUDP(addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err })
	return pc, err
}

// DialTCP dials addr from inside the namespace.
func (n *Namespace) DialTCP(addr string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var c net.Conn
		err := n.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
}
