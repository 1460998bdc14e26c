package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Cluster authentication of gRPC streams.
//
// A peer stream is opened only between two sites that hold the same cluster
// token (GRPCConfig.ClusterToken), each proving it to the other without
// sending it: the dialler sends a fresh nonce in the stream's metadata; the
// server answers, in its header, a nonce of its own and an HMAC-SHA256 keyed
// by the token over both nonces; the dialler checks it before it sends
// anything, then proves itself the same way (another label) in the stream's
// first frame, and only then sends messages. A proof is good for one stream
// only, so one seen on the wire cannot be replayed, and a site never sends its
// changes to a server of another cluster. The token itself never travels nor
// appears in logs or errors. A stream that does not prove the token is refused
// with codes.Unauthenticated before any of its messages is read, and logged
// with the peer's address.

// ErrUnauthenticated is returned (wrapped) for a peer that does not prove it
// holds this cluster's token.
var ErrUnauthenticated = errors.New("peer: the peer does not hold this cluster's token")

const (
	mdNonce  = "rhizome-peer-nonce"
	mdProof  = "rhizome-peer-proof"
	nonceLen = 16
	// authFrame is the first byte of a stream's proof frame: never a wire
	// version, so it cannot be mistaken for a Message.
	authFrame byte = 0xa5
)

// proof is the HMAC by which one side (role) shows it holds token, for the
// stream of these nonces.
func proof(token, role string, dialler, server []byte) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(mac, "rhizome peer stream v1\x00%s\x00", role)
	mac.Write(dialler)
	mac.Write(server)
	return mac.Sum(nil)
}

// nonce reads a fresh nonce from the transport's source.
func (t *GRPC) nonce() ([]byte, error) {
	b := make([]byte, nonceLen)
	if _, err := io.ReadFull(t.cfg.Rand, b); err != nil {
		return nil, fmt.Errorf("peer: nonce: %w", err)
	}
	return b, nil
}

// mdBytes reads one hex value of metadata (nil if absent or malformed).
func mdBytes(md metadata.MD, key string) []byte {
	v := md.Get(key)
	if len(v) != 1 {
		return nil
	}
	b, err := hex.DecodeString(v[0])
	if err != nil {
		return nil
	}
	return b
}

// admit runs the server's side of a stream's authentication. It always sends
// the header, so that a dialler waiting for it is never left hanging.
func (t *GRPC) admit(s grpc.ServerStream) error {
	md, _ := metadata.FromIncomingContext(s.Context())
	theirs := mdBytes(md, mdNonce)
	ours, err := t.nonce()
	if err != nil {
		return err
	}
	header := metadata.Pairs(mdNonce, hex.EncodeToString(ours))
	token := t.cfg.ClusterToken
	if token != "" && len(theirs) == nonceLen {
		header.Set(mdProof, hex.EncodeToString(proof(token, "server", theirs, ours)))
	}
	if err := s.SendHeader(header); err != nil {
		return err
	}
	if token == "" {
		return nil
	}
	if len(theirs) != nonceLen {
		return fmt.Errorf("%w: it sent no nonce", ErrUnauthenticated)
	}
	// The proof must come within the dial timeout: a stream that sends
	// nothing holds no goroutine for long (returning ends it, and the read).
	w := &wireMessage{m: &Message{}}
	got := make(chan error, 1)
	go func() { got <- s.RecvMsg(w) }()
	select {
	case err := <-got:
		if err != nil {
			return fmt.Errorf("%w: no proof received: %w", ErrUnauthenticated, err)
		}
	case <-time.After(t.cfg.DialTimeout):
		return fmt.Errorf("%w: no proof within %v", ErrUnauthenticated, t.cfg.DialTimeout)
	}
	if !hmac.Equal(w.auth, proof(token, "client", theirs, ours)) {
		return fmt.Errorf("%w: wrong proof", ErrUnauthenticated)
	}
	return nil
}

// refuse logs a stream that failed authentication and returns its status.
func (t *GRPC) refuse(s grpc.ServerStream, err error) error {
	remote := "unknown"
	if p, ok := grpcpeer.FromContext(s.Context()); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	t.cfg.Logger.Warn("peer: refusing a stream: it does not prove this cluster's token (a site of another cluster, or not a site)", "remote", remote, "err", err)
	return status.Error(codes.Unauthenticated, err.Error())
}

// prove runs the dialler's side of a stream's authentication: it checks the
// server's proof, within the dial timeout, and sends its own.
func (t *GRPC) prove(conn *grpc.ClientConn, s grpc.ClientStream, ours []byte) error {
	timer := time.AfterFunc(t.cfg.DialTimeout, func() { conn.Close() })
	header, err := s.Header()
	timer.Stop()
	if err != nil {
		return fmt.Errorf("peer: waiting for the peer's proof: %w", err)
	}
	theirs := mdBytes(header, mdNonce)
	if len(theirs) != nonceLen || !hmac.Equal(mdBytes(header, mdProof), proof(t.cfg.ClusterToken, "server", ours, theirs)) {
		return ErrUnauthenticated
	}
	return s.SendMsg(&wireMessage{auth: proof(t.cfg.ClusterToken, "client", ours, theirs)})
}
