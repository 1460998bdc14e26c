package netdelay

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
)

// Shape is what a link does to data in one direction.
type Shape struct {
	// Delay is the one-way delay added to every chunk or datagram.
	Delay time.Duration
	// Jitter spreads the delay uniformly over [Delay-Jitter, Delay+Jitter]
	// (never below zero).
	Jitter time.Duration
}

// Validate reports a negative delay or jitter.
func (s Shape) Validate() error {
	if s.Delay < 0 || s.Jitter < 0 {
		return fmt.Errorf("netdelay: shape %v±%v: delay and jitter must not be negative", s.Delay, s.Jitter)
	}
	return nil
}

func (s Shape) String() string { return fmt.Sprintf("%v±%v", s.Delay, s.Jitter) }

// CutMode says what a cut does to TCP connections already open.
type CutMode int

const (
	// CutStall holds their data until Heal, as a network that drops packets
	// for a while does to a connection that survives it; nothing is lost.
	CutStall CutMode = iota
	// CutClose closes them at once, as a reset or a restarted middlebox does.
	CutClose
)

func (m CutMode) String() string {
	switch m {
	case CutStall:
		return "stall"
	case CutClose:
		return "close"
	}
	return fmt.Sprintf("CutMode(%d)", int(m))
}

// Config is one link's settings.
type Config struct {
	// Name identifies the link in logs and errors, e.g. "a->b".
	Name string
	// Forward shapes data from the side that dialed (or sent to the relay's
	// forward socket); Back shapes the answers.
	Forward, Back Shape
	// ChunkSize is the most a reader takes from a connection at once.
	ChunkSize int
	// QueueChunks bounds the chunks (or datagrams) in flight per
	// connection direction; a full queue stops reading from the sender.
	QueueChunks int
	// DialTimeout bounds how long the proxy waits for the target.
	DialTimeout time.Duration
	// Seed makes the jitter reproducible.
	Seed uint64
	// Clock times the delays; nil means the real clock.
	Clock clockwork.Clock
	// Logger receives connection errors at debug level; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig is a link with no delay.
func DefaultConfig() Config {
	return Config{
		ChunkSize:   32 << 10,
		QueueChunks: 1024,
		DialTimeout: 10 * time.Second,
		Seed:        1,
	}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.ChunkSize < 1:
		return errors.New("netdelay: ChunkSize must be positive")
	case c.QueueChunks < 1:
		return errors.New("netdelay: QueueChunks must be positive")
	case c.DialTimeout <= 0:
		return errors.New("netdelay: DialTimeout must be positive")
	}
	if err := c.Forward.Validate(); err != nil {
		return err
	}
	return c.Back.Validate()
}

// withDefaults fills in the clock and logger.
func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
