package netdelay

import (
	"errors"
	"io"
	"net"
	"time"
)

// chunk is data read from one side and not yet delivered to the other.
type chunk struct {
	data    []byte
	release time.Time
	eof     bool // the sender closed its side after data
}

// errAborted ends a stream whose reader failed or whose link was closed.
var errAborted = errors.New("netdelay: stream aborted")

// pump copies src to dst through a timed queue: a reader goroutine stamps
// each chunk with its release time and queues it (blocking when
// QueueChunks are in flight), and the calling goroutine delivers chunks in
// order once released and while the link is not cut. A clean end of src is
// passed on as a half-close of dst after the same delay. pump returns nil
// after such an end, or an error when either side failed or done closed;
// the caller then closes both connections, which also ends the reader.
func (l *link) pump(done <-chan struct{}, dst io.Writer, src io.Reader, dir Direction) error {
	q := make(chan chunk, l.cfg.QueueChunks)
	go l.read(done, q, src, dir)
	for c := range q {
		if err := l.wait(done, c.release); err != nil {
			return err
		}
		if c.eof {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				return cw.CloseWrite()
			}
			return nil
		}
		// Counted before the write, so a reader that has the bytes sees
		// them counted; a short write takes back what did not go.
		l.bytes[dir].Add(int64(len(c.data)))
		n, err := dst.Write(c.data)
		if err != nil {
			l.bytes[dir].Add(int64(n - len(c.data)))
			return err
		}
	}
	return errAborted
}

// read feeds q from src until src ends or fails, then closes q. A clean
// end is queued as an eof chunk.
func (l *link) read(done <-chan struct{}, q chan<- chunk, src io.Reader, dir Direction) {
	defer close(q)
	rel := releaser{l: l, dir: dir}
	buf := make([]byte, l.cfg.ChunkSize)
	for {
		n, err := src.Read(buf)
		c := chunk{release: rel.next(l.cfg.Clock.Now())}
		switch {
		case n > 0:
			c.data = append([]byte(nil), buf[:n]...)
		case errors.Is(err, io.EOF):
			c.eof = true
		case err != nil:
			return
		default:
			continue
		}
		select {
		case q <- c:
		case <-done:
			return
		}
		if err != nil {
			if errors.Is(err, io.EOF) && !c.eof {
				select {
				case q <- chunk{release: c.release, eof: true}:
				case <-done:
				}
			}
			return
		}
	}
}

// wait blocks until release has passed on the link's clock and the link is
// not cut, or done closes.
func (l *link) wait(done <-chan struct{}, release time.Time) error {
	if d := release.Sub(l.cfg.Clock.Now()); d > 0 {
		t := l.cfg.Clock.NewTimer(d)
		select {
		case <-t.Chan():
		case <-done:
			t.Stop()
			return errAborted
		}
	}
	select {
	case <-l.gate():
		return nil
	case <-done:
		return errAborted
	}
}

// isClosed reports whether err means the socket was closed under us.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
