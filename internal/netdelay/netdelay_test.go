package netdelay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// echoServer answers every connection with what it reads, half-closing
// after the client does.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, cfg Config, target string) *Proxy {
	t.Helper()
	p, err := ListenTCP(cfg, "127.0.0.1:0", DialTCP(target))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(start.Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, err
	}
	if !bytes.Equal(got, msg) {
		return 0, errors.New("echo differs")
	}
	return time.Since(start), nil
}

func TestProxyDelaysEachDirection(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name = "a->b"
	cfg.Forward = Shape{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}
	cfg.Back = Shape{Delay: 10 * time.Millisecond}
	p := startProxy(t, cfg, echoServer(t))
	c := dial(t, p)
	const pings = 10
	floor := cfg.Forward.Delay - cfg.Forward.Jitter + cfg.Back.Delay
	for i := range pings {
		rtt, err := roundTrip(c, []byte{byte(i)}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if rtt < floor {
			t.Errorf("ping %d: round trip %v, below the configured %v", i, rtt, floor)
		}
	}
	if st := p.Stats(); st.BytesForward != pings || st.BytesBack != pings || st.Accepted != 1 {
		t.Errorf("stats %+v, want %d bytes each way over 1 connection", st, pings)
	}
	// A new shape applies to data read afterwards.
	if err := p.SetShape(Shape{Delay: 60 * time.Millisecond}, Shape{}); err != nil {
		t.Fatal(err)
	}
	if rtt, err := roundTrip(c, []byte("x"), 5*time.Second); err != nil || rtt < 60*time.Millisecond {
		t.Errorf("after SetShape: round trip %v (%v), want >= 60ms", rtt, err)
	}
	if err := p.SetShape(Shape{Delay: -1}, Shape{}); err == nil {
		t.Error("SetShape accepted a negative delay")
	}
}

func TestProxyKeepsOrderAndHalfClose(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ChunkSize = 1000 // many chunks, each with its own jitter
	cfg.Forward = Shape{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}
	cfg.Back = cfg.Forward
	p := startProxy(t, cfg, echoServer(t))
	c := dial(t, p)
	msg := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range msg {
		msg[i] = byte(rng.Uint32())
	}
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c) // ends only if the half-close crossed both ways
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes came back as %d bytes, not identical", len(msg), len(got))
	}
	if st := p.Stats(); st.BytesForward != int64(len(msg)) || st.BytesBack != int64(len(msg)) {
		t.Errorf("stats %+v, want %d each way", st, len(msg))
	}
}

func TestProxyCutStallThenHeal(t *testing.T) {
	p := startProxy(t, DefaultConfig(), echoServer(t))
	old := dial(t, p)
	if _, err := roundTrip(old, []byte("before"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut(CutStall)
	if !p.IsCut() {
		t.Fatal("IsCut after Cut")
	}
	// A new connection is refused: accepted, then closed unused.
	fresh := dial(t, p)
	fresh.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := fresh.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("new connection during the cut: read %d, %v; want it closed", n, err)
	}
	// An open one stalls: nothing comes back while cut...
	if _, err := roundTrip(old, []byte("during"), 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("round trip during a stall cut: %v, want a timeout", err)
	}
	// ...and delivers what it held after the heal.
	p.Heal()
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("during"))
	if _, err := io.ReadFull(old, got); err != nil || string(got) != "during" {
		t.Fatalf("after heal: %q, %v", got, err)
	}
	if _, err := roundTrip(dial(t, p), []byte("after"), 5*time.Second); err != nil {
		t.Errorf("new connection after heal: %v", err)
	}
	if st := p.Stats(); st.Refused != 1 || st.Accepted != 2 {
		t.Errorf("stats %+v, want 2 accepted, 1 refused", st)
	}
}

func TestProxyCutClose(t *testing.T) {
	p := startProxy(t, DefaultConfig(), echoServer(t))
	c := dial(t, p)
	if _, err := roundTrip(c, []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut(CutClose)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after CutClose: %v, want the connection closed", err)
	}
	p.Heal()
	if _, err := roundTrip(dial(t, p), []byte("y"), 5*time.Second); err != nil {
		t.Errorf("after heal: %v", err)
	}
}

// TestPumpReleasesOnTheClock drives one direction with a fake clock: a
// chunk is delivered exactly when its delay has passed, not before.
func TestPumpReleasesOnTheClock(t *testing.T) {
	clock := clockwork.NewFakeClock()
	cfg := DefaultConfig()
	cfg.Forward = Shape{Delay: 10 * time.Millisecond}
	cfg.Clock = clock
	l := newLink(cfg.withDefaults())
	src, in := io.Pipe()
	out := make(chan string, 4)
	done := make(chan struct{})
	defer close(done)
	go l.pump(done, writerFunc(func(b []byte) (int, error) { out <- string(b); return len(b), nil }), src, Forward)

	go in.Write([]byte("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the writer's timer
		t.Fatal(err)
	}
	clock.Advance(9 * time.Millisecond)
	select {
	case s := <-out:
		t.Fatalf("%q delivered after 9ms of a 10ms delay", s)
	case <-time.After(50 * time.Millisecond):
	}
	clock.Advance(time.Millisecond)
	select {
	case s := <-out:
		if s != "a" {
			t.Errorf("delivered %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered once the delay passed")
	}
	if got := l.Stats().BytesForward; got != 1 {
		t.Errorf("BytesForward = %d", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestReleaserKeepsOrderWithinJitter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Forward = Shape{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}
	l := newLink(cfg.withDefaults())
	r := releaser{l: l, dir: Forward}
	now := time.Unix(1000, 0)
	var prev time.Time
	spread := map[time.Duration]bool{}
	for i := range 1000 {
		at := now.Add(time.Duration(i) * 100 * time.Microsecond)
		rel := r.next(at)
		d := rel.Sub(at)
		if rel.Before(prev) {
			t.Fatalf("chunk %d released at %v, before the previous chunk (%v)", i, rel, prev)
		}
		if d < 5*time.Millisecond || (d > 15*time.Millisecond && !rel.Equal(prev)) {
			t.Fatalf("chunk %d delayed %v, outside 10ms±5ms", i, d)
		}
		prev = rel
		spread[d.Round(time.Millisecond)] = true
	}
	if len(spread) < 5 {
		t.Errorf("delays took only %d distinct values: no jitter", len(spread))
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"chunk":  func(c *Config) { c.ChunkSize = 0 },
		"queue":  func(c *Config) { c.QueueChunks = 0 },
		"dial":   func(c *Config) { c.DialTimeout = 0 },
		"delay":  func(c *Config) { c.Forward.Delay = -time.Millisecond },
		"jitter": func(c *Config) { c.Back.Jitter = -time.Millisecond },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			mut(&c)
			if c.Validate() == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// udpEcho answers every datagram to its sender.
func udpEcho(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	return pc
}

func TestRelayDelaysCutsAndHeals(t *testing.T) {
	target := udpEcho(t)
	cfg := DefaultConfig()
	cfg.Name = "a->b udp"
	cfg.Forward = Shape{Delay: 15 * time.Millisecond}
	cfg.Back = Shape{Delay: 15 * time.Millisecond}
	r, err := ListenUDP(cfg, "127.0.0.1:0", nil, "127.0.0.1:0", target.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	client, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ping := func(msg string, timeout time.Duration) (time.Duration, error) {
		start := time.Now()
		if _, err := client.WriteTo([]byte(msg), r.FrontAddr()); err != nil {
			return 0, err
		}
		client.SetReadDeadline(start.Add(timeout))
		buf := make([]byte, 100)
		n, _, err := client.ReadFrom(buf)
		if err == nil && string(buf[:n]) != msg {
			err = errors.New("wrong answer " + string(buf[:n]))
		}
		return time.Since(start), err
	}
	rtt, err := ping("one", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 30*time.Millisecond {
		t.Errorf("round trip %v, below the configured 30ms", rtt)
	}
	r.Cut(CutStall)
	if _, err := ping("two", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ping during the cut: %v, want it dropped", err)
	}
	r.Heal()
	if _, err := ping("three", 5*time.Second); err != nil {
		t.Errorf("after heal: %v", err)
	}
	st := r.Stats()
	if st.BytesForward != int64(len("one")+len("three")) || st.BytesBack != st.BytesForward || st.Refused != 1 {
		t.Errorf("stats %+v", st)
	}
}
