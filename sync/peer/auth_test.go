package peer

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rhizome-kv/rhizome/store"
)

// grpcSite is a site whose runner talks gRPC over loopback.
type grpcSite struct {
	st   *store.Store
	r    *Runner
	addr string
	logs *syncBuffer
}

func startGRPCSite(t *testing.T, name, token string) *grpcSite {
	t.Helper()
	s := &grpcSite{st: openStore(t, name), logs: &syncBuffer{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	cfg := DefaultConfig()
	cfg.AntiEntropyInterval, cfg.Redial, cfg.GRPC.DialTimeout = 50*time.Millisecond, 50*time.Millisecond, time.Second
	cfg.GRPC.ClusterToken, cfg.Logger = token, slog.New(slog.NewTextHandler(s.logs, nil))
	if s.r, err = NewRunner(cfg, s.st); err != nil {
		t.Fatal(err)
	}
	go s.r.Serve(ln)
	t.Cleanup(s.r.Close)
	return s
}

// waitLog waits until a site's log holds line.
func waitLog(t *testing.T, s *grpcSite, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.logs.String(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q logged:\n%s", line, s.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawStream opens a peer stream to addr as a client that knows the peer port:
// it sends the nonce, and then the proof auth makes of the nonces, if any,
// without checking the server's; then it sends m (nil: nothing, the stream
// left open) and returns the status the server ended the stream with.
func rawStream(t *testing.T, addr string, auth func(ours, theirs []byte) []byte, m *Message) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ours := []byte("0123456789abcdef")
	ctx = metadata.AppendToOutgoingContext(ctx, mdNonce, hex.EncodeToString(ours))
	s, err := conn.NewStream(ctx, &serviceDesc.Streams[0], "/"+serviceDesc.ServiceName+"/Deliver")
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		header, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendMsg(&wireMessage{auth: auth(ours, mdBytes(header, mdNonce))}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	if m == nil { // say nothing more, and keep the stream open
		return s.RecvMsg(&wireMessage{m: &Message{}})
	}
	if err := s.SendMsg(&wireMessage{m: m}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	s.CloseSend()
	return s.RecvMsg(&wireMessage{m: &Message{}})
}

// TestClusterToken runs real runners over gRPC on loopback: a site of the
// same cluster syncs; a site of another cluster (another token) neither
// sends its changes nor receives any, and clients that know the peer port but
// not the token — proving nothing, another token, a replayed proof, or saying
// nothing at all — are refused with codes.Unauthenticated before a message is
// read (a silent one within the dial timeout). The store is untouched,
// both ends log the refusal with the other's address, and no token appears in
// the logs.
func TestClusterToken(t *testing.T) {
	const token, other = "cluster-secret-7f3a", "other-secret-91bc"
	b := startGRPCSite(t, "b", token)
	a := startGRPCSite(t, "a", token)
	x := startGRPCSite(t, "x", other)
	for _, s := range []*grpcSite{a, b, x} {
		s.r.SetPeers(map[string]string{"a": a.addr, "b": b.addr, "x": x.addr})
		s.r.SetCounted([]string{"a", "b"})
	}
	put(t, a.st, "/a", `{"v":1}`)
	put(t, x.st, "/x", `{"v":1}`)
	deadline := time.Now().Add(10 * time.Second)
	for b.st.DurableVersionVector()[a.st.Origin()] == 0 { // applied and readable, so the digest below holds it
		if time.Now().After(deadline) {
			t.Fatalf("a's change never reached b: b holds %v\nb's log:\n%s", b.st.VersionVector(), b.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLog(t, x, "does not prove this cluster's token") // x sends b nothing
	waitLog(t, b, "refusing a stream")                   // b takes nothing from x
	before, vv := digest(t, b.st), b.st.VersionVector()

	changes, err := x.st.Changes(x.st.Origin(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	inject := &Message{Kind: KindBatch, From: "x", Origin: x.st.Origin(), Changes: changes}
	for name, auth := range map[string]func(ours, theirs []byte) []byte{
		"no proof":            nil,
		"another token":       func(ours, theirs []byte) []byte { return proof(other, "client", ours, theirs) },
		"the server's proof":  func(ours, theirs []byte) []byte { return proof(token, "server", ours, theirs) },
		"a proof of no nonce": func(ours, theirs []byte) []byte { return proof(token, "client", nil, nil) },
	} {
		if err := rawStream(t, b.addr, auth, inject); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: the stream ended with %v, want Unauthenticated", name, err)
		}
	}
	start := time.Now()
	if err := rawStream(t, b.addr, nil, nil); status.Code(err) != codes.Unauthenticated || time.Since(start) > 5*time.Second {
		t.Errorf("a silent stream ended after %v with %v, want Unauthenticated within the dial timeout", time.Since(start), err)
	}
	time.Sleep(200 * time.Millisecond) // what x's runner might still send
	if after := digest(t, b.st); after != before || !maps.Equal(vv, b.st.VersionVector()) || b.st.VersionVector()[x.st.Origin()] != 0 {
		t.Fatalf("b's store changed: %v, was %v", b.st.VersionVector(), vv)
	}
	if x.st.VersionVector()[a.st.Origin()] != 0 || x.st.VersionVector()[b.st.Origin()] != 0 {
		t.Fatalf("x received changes of another cluster: %v", x.st.VersionVector())
	}
	if !strings.Contains(b.logs.String(), "remote=127.0.0.1:") {
		t.Errorf("b's refusals do not name the remote address:\n%s", b.logs.String())
	}
	for _, s := range []*grpcSite{a, b, x} {
		if out := s.logs.String(); strings.Contains(out, token) || strings.Contains(out, other) {
			t.Errorf("%s's log holds a cluster token:\n%s", s.st.Site(), out)
		}
	}
}
