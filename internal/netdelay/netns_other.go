//go:build !linux

package netdelay

import (
	"context"
	"errors"
	"net"
)

// errNoNamespaces is what every Namespace operation returns outside Linux.
var errNoNamespaces = errors.New("netdelay: network namespaces need Linux")

// Namespace is a Linux network namespace; elsewhere it cannot be made.
type Namespace struct {
	Name string
}

// NewNamespace fails outside Linux.
func NewNamespace(name string) (*Namespace, error) { return nil, errNoNamespaces }

// Close fails outside Linux.
func (n *Namespace) Close() error { return errNoNamespaces }

// Command returns bin and args unchanged.
func (n *Namespace) Command(bin string, args ...string) (string, []string) { return bin, args }

// Do fails outside Linux.
func (n *Namespace) Do(f func() error) error { return errNoNamespaces }

// ListenTCP fails outside Linux.
func (n *Namespace) ListenTCP(addr string) (net.Listener, error) { return nil, errNoNamespaces }

// ListenUDP fails outside Linux.
func (n *Namespace) ListenUDP(addr string) (net.PacketConn, error) { return nil, errNoNamespaces }

// DialTCP fails outside Linux.
func (n *Namespace) DialTCP(addr string) Dialer {
	return func(context.Context) (net.Conn, error) { return nil, errNoNamespaces }
}
