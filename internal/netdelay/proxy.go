package netdelay

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Dialer opens a connection to a proxy's target.
type Dialer func(ctx context.Context) (net.Conn, error)

// DialTCP dials addr over TCP.
func DialTCP(addr string) Dialer {
	var d net.Dialer
	return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}

// Proxy is one directed TCP link: it accepts connections on its listener
// and joins each to a fresh connection to its target, delaying the data
// both ways. Its methods are safe for concurrent use.
type Proxy struct {
	*link
	ln     net.Listener
	dial   Dialer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[*stream]struct{}
	closed bool
}

// stream is one proxied connection: the accepted side and the target side.
type stream struct {
	front, rear net.Conn
	done        chan struct{}
	once        sync.Once
}

// abort ends both directions of the stream at once.
func (s *stream) abort() {
	s.once.Do(func() {
		close(s.done)
		s.front.Close()
		s.rear.Close()
	})
}

// StartProxy serves ln until Close, forwarding every accepted connection to
// a connection from dial. The proxy owns ln and closes it.
func StartProxy(cfg Config, ln net.Listener, dial Dialer) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{link: newLink(cfg), ln: ln, dial: dial, ctx: ctx, cancel: cancel, conns: map[*stream]struct{}{}}
	p.onCut = append(p.onCut, func(m CutMode) {
		if m == CutClose {
			p.abortAll()
		}
	})
	p.wg.Go(p.accept)
	return p, nil
}

// ListenTCP is StartProxy on a new TCP listener at addr ("127.0.0.1:0" for
// any free port; Addr tells which).
func ListenTCP(cfg Config, addr string, dial Dialer) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netdelay: %s: %w", cfg.Name, err)
	}
	p, err := StartProxy(cfg, ln, dial)
	if err != nil {
		ln.Close()
	}
	return p, err
}

// Addr is the address the proxy accepts connections on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Close stops accepting, closes every proxied connection and waits for its
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.abortAll()
	p.wg.Wait()
	if err != nil && !isClosed(err) {
		return fmt.Errorf("netdelay: %s: %w", p.cfg.Name, err)
	}
	return nil
}

func (p *Proxy) abortAll() {
	p.mu.Lock()
	streams := make([]*stream, 0, len(p.conns))
	for s := range p.conns {
		streams = append(streams, s)
	}
	p.mu.Unlock()
	for _, s := range streams {
		s.abort()
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !isClosed(err) {
				p.cfg.Logger.Warn("netdelay: accept failed; proxy stops", "link", p.cfg.Name, "err", err)
			}
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve proxies one accepted connection until both directions end.
func (p *Proxy) serve(front net.Conn) {
	if p.IsCut() {
		p.refused.Add(1)
		front.Close()
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.DialTimeout)
	rear, err := p.dial(ctx)
	cancel()
	if err != nil {
		p.cfg.Logger.Debug("netdelay: dial target", "link", p.cfg.Name, "err", err)
		front.Close()
		return
	}
	s := &stream{front: front, rear: rear, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		s.abort()
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	p.accepted.Add(1)

	var wg sync.WaitGroup
	for _, d := range []Direction{Forward, Back} {
		dst, src := rear, front
		if d == Back {
			dst, src = front, rear
		}
		wg.Go(func() {
			if err := p.pump(s.done, dst, src, d); err != nil {
				p.cfg.Logger.Debug("netdelay: stream ends", "link", p.cfg.Name, "dir", d, "err", err)
				s.abort()
			}
		})
	}
	wg.Wait()
	s.abort()
	p.mu.Lock()
	delete(p.conns, s)
	p.mu.Unlock()
}
