package etcdshim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/watch"
)

// Version is the etcd server version reported by Status: the etcd API level served.
// kube-apiserver enables watch progress requests only for 3.5.13 and later.
const Version = "3.7.0"

// Backend is what the shim needs of a site's store (a *store.Store is one):
// reads through a view, writes through one atomic write at a time, and the
// maintenance the etcd API exposes.
type Backend interface {
	// Range reads at the newest durable revision or opts.Rev (store.ReadView's
	// rules).
	Range(key []byte, opts store.RangeOptions) (store.RangeResult, error)
	// Read returns a view at the newest durable revision, for requests that
	// write nothing.
	Read() store.TxnRead
	// Write runs fn as one atomic write and returns its revision once durable;
	// fn must validate before it changes anything (store.Store.Update).
	Write(ctx context.Context, fn func(tx store.TxnWrite) error) (int64, error)
	Rev() int64
	CompactRev() int64
	Compact(ctx context.Context, rev int64) error
	HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error)
	Size() int64
	GrantLease(ctx context.Context, id, ttl int64) (int64, int64, error)
	RevokeLease(ctx context.Context, id int64) (int64, error)
	RenewLease(id int64) (int64, error)
	LeaseTimeToLive(id int64, keys bool) (store.LeaseStatus, error)
	Leases() []int64
	// Space quota and the NOSPACE alarm (store's quota.go): WriteTxn.Reserve
	// refuses writes past the quota.
	Quota() int64
	NoSpace() bool
	RaiseNoSpace() error
	DisarmNoSpace() (bool, error)
	Defragment(ctx context.Context) error
	// OpenBackup takes one consistent read view of the whole store, for
	// Maintenance Snapshot; writers are not held up while it is open.
	OpenBackup() (*store.Backup, error)
}

// Member describes a site as etcd's Cluster API reports it.
type Member struct {
	Name       string
	PeerURLs   []string
	ClientURLs []string
}

// Config configures the shim.
type Config struct {
	// Name is this site's member name.
	Name string
	// ClusterID and MemberID fill response headers; 0 derives them from Name.
	ClusterID, MemberID uint64
	// AdvertiseClientURLs are reported by MemberList.
	AdvertiseClientURLs []string
	// MaxRequestBytes bounds a write request, as etcd's --max-request-bytes.
	MaxRequestBytes int
	// MaxTxnOps bounds the operations of one Txn, as etcd's --max-txn-ops.
	MaxTxnOps int
	// WatchProgressNotifyInterval is how often watchers that asked for progress
	// notifications get one.
	WatchProgressNotifyInterval time.Duration
	// TLS, when set, serves clients over TLS (with client certificates verified
	// when its ClientAuth says so).
	TLS *tls.Config
	// ServerOptions are added to the gRPC server's own (interceptors for
	// metrics, say); the shim does not keep them.
	ServerOptions []grpc.ServerOption
	// Members lists the cluster's live members; nil reports this site alone.
	Members func() []Member
	Logger  *slog.Logger
}

// DefaultConfig returns etcd's defaults.
func DefaultConfig() Config {
	return Config{
		Name:                        "default",
		AdvertiseClientURLs:         []string{"http://localhost:2379"},
		MaxRequestBytes:             1536 * 1024,
		MaxTxnOps:                   128,
		WatchProgressNotifyInterval: 10 * time.Minute,
		Logger:                      slog.Default(),
	}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("etcdshim: config: Name is empty")
	case c.MaxRequestBytes <= 0 || c.MaxTxnOps <= 0:
		return errors.New("etcdshim: config: MaxRequestBytes and MaxTxnOps must be positive")
	case c.WatchProgressNotifyInterval < 0:
		return errors.New("etcdshim: config: WatchProgressNotifyInterval is negative")
	case c.Logger == nil:
		return errors.New("etcdshim: config: Logger is required")
	}
	return nil
}

// grpcOverheadBytes is the slack etcd allows on top of MaxRequestBytes at the gRPC
// layer, so an oversized request gets etcd's "request is too large" error rather
// than a transport error.
const grpcOverheadBytes = 512 * 1024

// Server is the etcd API of one site.
type Server struct {
	cfg  Config
	be   Backend
	hub  *watch.Hub
	grpc *grpc.Server
}

// streamWorkers is how many goroutines answer streams (gRPC's
// NumStreamWorkers); a stream that finds them all busy gets a goroutine of its
// own, as every stream does without workers. A fresh goroutine starts with a
// small stack and grows it by copying as a request goes deeper: 13 % of the
// CPU of serializable Ranges under 100 clients went to that growth. A worker
// keeps the stack it grew for the next stream. Idle workers cost their stacks,
// a few KB each.
const streamWorkers = 64

// New builds the gRPC server for a backend and its watch hub.
func New(cfg Config, be Backend, hub *watch.Hub) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MemberID == 0 {
		cfg.MemberID = hashID("member/" + cfg.Name)
	}
	if cfg.ClusterID == 0 {
		cfg.ClusterID = hashID("cluster/" + cfg.Name)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// etcd's keepalive defaults: clients (kube-apiserver pings every 30 s)
		// may ping as often as every 5 s, even without active streams.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
		grpc.NumStreamWorkers(streamWorkers),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	opts = append(opts, cfg.ServerOptions...)
	s := &Server{cfg: cfg, be: be, hub: hub, grpc: grpc.NewServer(opts...)}
	pb.RegisterKVServer(s.grpc, &kvServer{s: s})
	pb.RegisterWatchServer(s.grpc, &watchServer{s: s})
	pb.RegisterLeaseServer(s.grpc, &leaseServer{s: s})
	pb.RegisterMaintenanceServer(s.grpc, &maintenanceServer{s: s})
	pb.RegisterClusterServer(s.grpc, &clusterServer{s: s})
	pb.RegisterAuthServer(s.grpc, &authServer{s: s})
	return s, nil
}

// Serve answers clients on l until Stop.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Stop closes every connection and stream.
func (s *Server) Stop() { s.grpc.Stop() }

// GracefulStop stops accepting and waits for calls in flight (streams are ended).
func (s *Server) GracefulStop() {
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.grpc.Stop() // watch streams never end by themselves
	}
}

func (s *Server) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.cfg.ClusterID, MemberId: s.cfg.MemberID, Revision: rev, RaftTerm: 1}
}

// checkSize refuses write requests over MaxRequestBytes with etcd's error.
func (s *Server) checkSize(m proto.Message) error {
	if proto.Size(m) > s.cfg.MaxRequestBytes {
		return toGRPC(errRequestTooLarge)
	}
	return nil
}

func hashID(s string) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, s)
	return h.Sum64()
}
