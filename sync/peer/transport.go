package peer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/rhizome-kv/rhizome/crdt"
)

// Transport carries Messages between sites, as one-way streams: a site dials a
// stream to each peer it sends to, and accepts the streams its peers dial. The
// Runner is its only user; it gives each stream to one goroutine.
//
// A Transport may lose, delay, duplicate and reorder messages, and break streams
// at any time: the protocol is idempotent and the Runner redials. It must not
// alter a message it delivers, and never delivers a message the sender did not
// send (a message is decoded from the wire, or is a copy, never the sender's own
// value).
type Transport interface {
	// Listen sets the handler of inbound streams. The transport calls accept on
	// a goroutine of its own for each stream a peer opens, and ends the stream
	// when accept returns; a non-nil error ends it as failed. It is called once,
	// before any Dial; streams may arrive as soon as it is.
	Listen(accept func(Inbound) error)
	// Dial opens a stream to the site at addr. It blocks until the stream is open,
	// the peer is found unreachable, or ctx ends. The stream ends when ctx does.
	Dial(ctx context.Context, addr string) (Outbound, error)
	// Close stops accepting, ends every stream and returns once no accept call is
	// running. The transport cannot be used again.
	Close()
}

// Outbound is the sending side of a stream. It is used by one goroutine.
type Outbound interface {
	// Send writes m, blocking while the stream has no room (a slow peer holds up
	// only its own stream). It returns the bytes m took on the wire. The caller
	// keeps m: the transport copies what it needs before returning. After an
	// error the stream is broken and only Close may be called.
	Send(m *Message) (int, error)
	// Close ends the stream; messages already sent may still arrive.
	Close() error
}

// Inbound is the receiving side of a stream. It is used by one goroutine.
type Inbound interface {
	// Recv blocks until the next message arrives and returns it with the bytes
	// it took on the wire; io.EOF when the sender closed the stream, another
	// error when it broke. The message is the caller's.
	Recv() (Message, int, error)
	// Context ends when the stream does.
	Context() context.Context
}

// maxMessageBytes is gRPC's limit of a peer message.
const maxMessageBytes = 256 << 20

// GRPCConfig configures the gRPC transport.
type GRPCConfig struct {
	// ServerTLS and ClientTLS, when set, secure peer traffic (mutual TLS when the
	// server requires client certificates). Without them peers talk in plain text.
	ServerTLS, ClientTLS *tls.Config
	// ServerOptions are added to the peer gRPC server's (interceptors such as
	// gRPC's server metrics, shared with the site's other gRPC server).
	ServerOptions []grpc.ServerOption
	// KeepaliveTime is how long a connection may go without hearing from the
	// other side before it is pinged, and KeepaliveTimeout how long the ping may
	// go unanswered before the connection (and its stream) is dropped: a stream
	// a silent network cut stalled is found dead then and dialled afresh. gRPC
	// pings from a client no more often than every 10 s, whatever is set; the
	// server pings its clients at KeepaliveTime (1 s at least), and lets them
	// ping it every KeepaliveTime/2.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// DialTimeout bounds the connection attempt of a Dial: a peer behind a cut
	// that drops packets fails the Dial then, rather than after gRPC's 20 s.
	// It bounds the wait for the peer's proof of the cluster token too.
	DialTimeout time.Duration
	// ClusterToken, when set, is the secret every stream's two ends prove they
	// hold before a message passes (auth.go): a site of another cluster, or a
	// client that knows the peer port but not the token, can neither send nor
	// receive changes. Empty: streams are not authenticated.
	ClusterToken string
	// Rand is the source of the authentication's nonces (crypto/rand's Reader
	// if nil).
	Rand io.Reader
	// Logger receives the streams refused (nowhere if nil; a Runner sets its
	// own).
	Logger *slog.Logger
	// Compress compresses the messages a stream sends as one zstd stream,
	// each message flushed whole (compress.go; a receiver takes compressed and
	// plain streams alike): fewer bytes on slow links for some CPU.
	Compress bool
}

// DefaultGRPCConfig returns plain-text, compressed peer traffic with keepalives
// that find a stalled connection within a few seconds (the client's 10 s aside).
func DefaultGRPCConfig() GRPCConfig {
	return GRPCConfig{KeepaliveTime: 2 * time.Second, KeepaliveTimeout: 2 * time.Second, DialTimeout: 3 * time.Second, Compress: true}
}

// Validate reports the first problem with the configuration.
func (c GRPCConfig) Validate() error {
	if c.KeepaliveTime <= 0 || c.KeepaliveTimeout <= 0 || c.DialTimeout <= 0 {
		return errors.New("peer: grpc config: KeepaliveTime, KeepaliveTimeout and DialTimeout must be positive")
	}
	return nil
}

// GRPC is the Transport between real sites: one gRPC client stream per peer
// (method rhizome.peer.v1.Peer/Deliver), messages in the package's wire form, and
// keepalive pings that find a peer gone behind a silent network cut in seconds.
type GRPC struct {
	cfg    GRPCConfig
	server *grpc.Server
	creds  credentials.TransportCredentials
	accept func(Inbound) error
}

// NewGRPC returns a gRPC transport; call Serve to answer peers.
func NewGRPC(cfg GRPCConfig) (*GRPC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &GRPC{cfg: cfg, creds: insecure.NewCredentials()}
	if cfg.ClientTLS != nil {
		t.creds = credentials.NewTLS(cfg.ClientTLS)
	}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodec(codec{}),
		// Batches and snapshot parts may exceed gRPC's 4 MiB default.
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveTime / 2, PermitWithoutStream: true}),
	}
	if cfg.ServerTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.ServerTLS)))
	}
	t.server = grpc.NewServer(append(opts, cfg.ServerOptions...)...)
	t.server.RegisterService(&serviceDesc, t)
	return t, nil
}

// Serve answers peers on l until Close.
func (t *GRPC) Serve(l net.Listener) error { return t.server.Serve(l) }

// Listen implements Transport.
func (t *GRPC) Listen(accept func(Inbound) error) { t.accept = accept }

// Close implements Transport.
func (t *GRPC) Close() { t.server.Stop() }

// Dial implements Transport.
func (t *GRPC) Dial(ctx context.Context, addr string) (Outbound, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(t.creds), grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{})),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: t.cfg.KeepaliveTime, Timeout: t.cfg.KeepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: t.cfg.DialTimeout}))
	if err != nil {
		return nil, fmt.Errorf("peer: dial %s: %w", addr, err)
	}
	ours, err := t.nonce()
	if err != nil {
		conn.Close()
		return nil, err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, mdNonce, hex.EncodeToString(ours))
	s, err := conn.NewStream(ctx, &serviceDesc.Streams[0], "/"+serviceDesc.ServiceName+"/Deliver")
	if err == nil && t.cfg.ClusterToken != "" {
		err = t.prove(conn, s, ours)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("peer: stream to %s: %w", addr, err)
	}
	out := &grpcOut{conn: conn, s: s}
	if t.cfg.Compress {
		out.compress = newCompressor()
	}
	return out, nil
}

// deliver serves one peer's incoming stream, once it proved the cluster token.
func (t *GRPC) deliver(s grpc.ServerStream) error {
	if t.accept == nil {
		return errors.New("peer: not listening")
	}
	if err := t.admit(s); err != nil {
		return t.refuse(s, err)
	}
	return t.accept(&grpcIn{s: s})
}

type grpcOut struct {
	conn     *grpc.ClientConn
	s        grpc.ClientStream
	compress *compressor // nil: messages go plain
	edits    crdt.EditHashes
}

func (o *grpcOut) Send(m *Message) (int, error) {
	w := wireMessage{m: m}
	if o.compress != nil {
		// Packed only in a compressed stream, whose frames carry a CRC-32C:
		// a packed edit's own checksum is computed, not checked.
		frame, err := o.compress.frame(packEdits(&o.edits, m).encode())
		if err != nil {
			return 0, fmt.Errorf("peer: compress: %w", err)
		}
		w.frame = frame
	}
	if err := o.s.SendMsg(&w); err != nil {
		return 0, err
	}
	return w.n, nil
}

func (o *grpcOut) Close() error {
	o.s.CloseSend()
	return o.conn.Close()
}

type grpcIn struct {
	s          grpc.ServerStream
	decompress decompressor
	edits      crdt.EditHashes
}

func (i *grpcIn) Recv() (Message, int, error) {
	var m Message
	w := wireMessage{m: &m}
	if err := i.s.RecvMsg(&w); err != nil {
		return m, w.n, err
	}
	if w.auth != nil {
		return m, w.n, fmt.Errorf("peer: a proof frame amid messages: %w", errWire)
	}
	if w.frame != nil {
		b, err := i.decompress.message(w.frame)
		if err == nil {
			err = m.decode(b)
		}
		if err == nil {
			err = unpackEdits(&i.edits, &m)
		}
		return m, w.n, err
	}
	return m, w.n, nil
}

func (i *grpcIn) Context() context.Context { return i.s.Context() }

// wireMessage is a Message as the codec sees it, with the size it had on the
// wire; or, when auth is set, a stream's proof of the cluster token (auth.go).
type wireMessage struct {
	m     *Message
	n     int
	auth  []byte
	frame []byte // the message compressed (compress.go), zstdFrame first when sent
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "rhizome.peer.v1.Peer",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Deliver",
		ClientStreams: true,
		Handler:       func(srv any, s grpc.ServerStream) error { return srv.(*GRPC).deliver(s) },
	}},
}
