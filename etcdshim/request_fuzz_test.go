package etcdshim_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rhizome-kv/rhizome/etcdshim"
	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/watch"
)

// startInProcess serves the etcd API of an in-memory store on a loopback port,
// with etcd's default limits, and returns a raw gRPC connection to it.
func startInProcess(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	scfg := store.DefaultConfig()
	scfg.InMemory, scfg.Logger = true, slog.New(slog.DiscardHandler)
	st, err := store.Open(scfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	hub, err := watch.NewHub(watch.DefaultConfig(), st)
	if err != nil {
		tb.Fatal(err)
	}
	st.SetPublisher(hub)
	ecfg := etcdshim.DefaultConfig()
	ecfg.Logger = scfg.Logger
	srv, err := etcdshim.New(ecfg, st, hub)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Request kinds of FuzzRequest: its first argument, modulo their count.
const (
	fuzzRange = iota
	fuzzPut
	fuzzDelete
	fuzzTxn
	fuzzCompact
	fuzzLeaseGrant
	fuzzLeaseRevoke
	fuzzWatch
	fuzzKinds
)

// FuzzRequest sends arbitrary etcd requests (protobuf bytes decoded as the kind
// chosen) to a real in-process server: each must get a response or one of etcd's
// errors (never an unmapped one), and the server must keep answering. A panic in
// a handler would end the process, failing the target.
func FuzzRequest(f *testing.F) {
	seed := func(kind uint8, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kind, b)
	}
	seed(fuzzRange, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Limit: 2, Revision: 1})
	seed(fuzzRange, &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("a")})
	seed(fuzzRange, &pb.RangeRequest{Key: []byte("a"), Revision: 1 << 40})
	seed(fuzzPut, &pb.PutRequest{Key: []byte("a"), Value: []byte(`{"x":1}`)})
	seed(fuzzPut, &pb.PutRequest{Key: []byte{}, Value: []byte("v")})
	seed(fuzzPut, &pb.PutRequest{Key: []byte("a"), Lease: 42, PrevKv: true})
	seed(fuzzDelete, &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, PrevKv: true})
	seed(fuzzTxn, &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}},
	})
	seed(fuzzCompact, &pb.CompactionRequest{Revision: 2})
	seed(fuzzLeaseGrant, &pb.LeaseGrantRequest{TTL: 5, ID: 7})
	seed(fuzzLeaseRevoke, &pb.LeaseRevokeRequest{ID: 7})
	seed(fuzzWatch, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 1, PrevKv: true}}})
	conn := startInProcess(f)
	kv, lease, wc := pb.NewKVClient(conn), pb.NewLeaseClient(conn), pb.NewWatchClient(conn)
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		switch kind % fuzzKinds {
		case fuzzRange:
			err = call(b, &pb.RangeRequest{}, func(r *pb.RangeRequest) error { _, err := kv.Range(ctx, r); return err })
		case fuzzPut:
			err = call(b, &pb.PutRequest{}, func(r *pb.PutRequest) error { _, err := kv.Put(ctx, r); return err })
		case fuzzDelete:
			err = call(b, &pb.DeleteRangeRequest{}, func(r *pb.DeleteRangeRequest) error { _, err := kv.DeleteRange(ctx, r); return err })
		case fuzzTxn:
			err = call(b, &pb.TxnRequest{}, func(r *pb.TxnRequest) error { _, err := kv.Txn(ctx, r); return err })
		case fuzzCompact:
			err = call(b, &pb.CompactionRequest{}, func(r *pb.CompactionRequest) error { _, err := kv.Compact(ctx, r); return err })
		case fuzzLeaseGrant:
			err = call(b, &pb.LeaseGrantRequest{}, func(r *pb.LeaseGrantRequest) error { _, err := lease.LeaseGrant(ctx, r); return err })
		case fuzzLeaseRevoke:
			err = call(b, &pb.LeaseRevokeRequest{}, func(r *pb.LeaseRevokeRequest) error { _, err := lease.LeaseRevoke(ctx, r); return err })
		case fuzzWatch:
			err = call(b, &pb.WatchRequest{}, func(r *pb.WatchRequest) error { return watchOnce(ctx, wc, r) })
		}
		if code := status.Code(err); code == codes.Unknown || code == codes.Internal {
			t.Fatalf("kind %d: an error etcd would not give: %v", kind%fuzzKinds, err)
		}
		if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")}); err != nil {
			t.Fatalf("the server stopped answering: %v", err)
		}
	})
}

// call decodes b into req and sends it; bytes that are no such request are
// skipped (the gRPC layer refuses them before the server sees them).
func call[R proto.Message](b []byte, req R, send func(R) error) error {
	if proto.Unmarshal(b, req) != nil {
		return nil
	}
	return send(req)
}

// watchOnce sends one watch request and reads one response, if one comes soon.
func watchOnce(ctx context.Context, wc pb.WatchClient, r *pb.WatchRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	s, err := wc.Watch(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(r); err != nil {
		return err
	}
	_, err = s.Recv()
	if status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Canceled {
		return nil // nothing to say to this request (a progress or cancel request alone)
	}
	return err
}
