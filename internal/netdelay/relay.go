package netdelay

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Relay is one directed UDP link between two sockets the relay owns: front
// receives the datagrams of the forward side (the source) and rear sends
// them on to the target; the target's answers arrive on rear and go out of
// front to the source. Datagrams keep their order per direction; while the
// link is cut, or when a direction's queue is full, they are dropped and
// counted in Stats.Refused, as a network drops them. Its methods are safe
// for concurrent use.
type Relay struct {
	*link
	front, rear net.PacketConn
	source      net.Addr // nil: the latest sender on front
	target      net.Addr

	mu     sync.Mutex
	lastIn net.Addr
	wg     sync.WaitGroup
	done   chan struct{}
	closer sync.Once
}

// StartRelay relays between front and rear until Close, and owns both
// sockets. source is where answers go; nil sends them to whoever sent on
// front last (and drops them until someone has).
func StartRelay(cfg Config, front net.PacketConn, source net.Addr, rear net.PacketConn, target net.Addr) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if target == nil {
		return nil, fmt.Errorf("netdelay: relay %s: no target", cfg.Name)
	}
	r := &Relay{link: newLink(cfg.withDefaults()), front: front, rear: rear, source: source, target: target, done: make(chan struct{})}
	for _, d := range []Direction{Forward, Back} {
		q := make(chan chunk, r.cfg.QueueChunks)
		r.wg.Go(func() { r.receive(d, q) })
		r.wg.Go(func() { r.deliver(d, q) })
	}
	return r, nil
}

// ListenUDP is StartRelay on two new UDP sockets: front at frontAddr and
// rear at rearAddr ("127.0.0.1:0" for any free port).
func ListenUDP(cfg Config, frontAddr string, source net.Addr, rearAddr string, target net.Addr) (*Relay, error) {
	front, err := net.ListenPacket("udp", frontAddr)
	if err != nil {
		return nil, fmt.Errorf("netdelay: relay %s: %w", cfg.Name, err)
	}
	rear, err := net.ListenPacket("udp", rearAddr)
	if err != nil {
		front.Close()
		return nil, fmt.Errorf("netdelay: relay %s: %w", cfg.Name, err)
	}
	r, err := StartRelay(cfg, front, source, rear, target)
	if err != nil {
		front.Close()
		rear.Close()
	}
	return r, err
}

// FrontAddr is where the source sends; RearAddr is where the target's
// datagrams come from (and where it answers).
func (r *Relay) FrontAddr() net.Addr { return r.front.LocalAddr() }
func (r *Relay) RearAddr() net.Addr  { return r.rear.LocalAddr() }

// Close closes both sockets, dropping what is in flight, and waits for the
// relay's goroutines.
func (r *Relay) Close() error {
	var err error
	r.closer.Do(func() {
		close(r.done)
		err = errors.Join(r.front.Close(), r.rear.Close())
		r.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("netdelay: relay %s: %w", r.cfg.Name, err)
	}
	return nil
}

// receive reads direction d's socket and queues what it reads.
func (r *Relay) receive(d Direction, q chan<- chunk) {
	defer close(q)
	in := r.front
	if d == Back {
		in = r.rear
	}
	rel := releaser{l: r.link, dir: d}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := in.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if d == Forward {
			r.mu.Lock()
			r.lastIn = from
			r.mu.Unlock()
		}
		if r.IsCut() {
			r.refused.Add(1)
			continue
		}
		select {
		case q <- chunk{data: append([]byte(nil), buf[:n]...), release: rel.next(r.cfg.Clock.Now())}:
		default:
			r.refused.Add(1) // queue full: dropped like a router drops
		}
	}
}

// deliver sends direction d's datagrams once released; those whose link
// is cut at release time are dropped.
func (r *Relay) deliver(d Direction, q <-chan chunk) {
	out, to := r.rear, r.target
	if d == Back {
		out = r.front
	}
	for c := range q {
		if wait := c.release.Sub(r.cfg.Clock.Now()); wait > 0 {
			t := r.cfg.Clock.NewTimer(wait)
			select {
			case <-t.Chan():
			case <-r.done:
				t.Stop()
				return
			}
		}
		if d == Back {
			if to = r.answerTo(); to == nil {
				r.refused.Add(1)
				continue
			}
		}
		if r.IsCut() {
			r.refused.Add(1)
			continue
		}
		r.bytes[d].Add(int64(len(c.data)))
		r.accepted.Add(1)
		if _, err := out.WriteTo(c.data, to); err != nil {
			r.bytes[d].Add(-int64(len(c.data)))
			r.accepted.Add(-1)
			if isClosed(err) {
				return
			}
			r.cfg.Logger.Debug("netdelay: relay send", "link", r.cfg.Name, "dir", d, "err", err)
		}
	}
}

func (r *Relay) answerTo() net.Addr {
	if r.source != nil {
		return r.source
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastIn
}
