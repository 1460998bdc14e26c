package etcdshim

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/rhizome-kv/rhizome/store"
)

type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (l *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > store.MaxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	id, ttl, err := l.s.be.GrantLease(ctx, r.ID, r.TTL)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseGrantResponse{Header: l.s.header(l.s.be.Rev()), ID: id, TTL: ttl}, nil
}

func (l *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	rev, err := l.s.be.RevokeLease(ctx, r.ID)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseRevokeResponse{Header: l.s.header(rev)}, nil
}

func (l *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	st, err := l.s.be.LeaseTimeToLive(r.ID, r.Keys)
	if errors.Is(err, store.ErrLeaseNotFound) {
		// etcd answers an unknown lease with TTL -1, not an error.
		return &pb.LeaseTimeToLiveResponse{Header: l.s.header(l.s.be.Rev()), ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseTimeToLiveResponse{Header: l.s.header(l.s.be.Rev()), ID: st.ID, TTL: st.Remaining, GrantedTTL: st.GrantedTTL, Keys: st.Keys}, nil
}

func (l *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	ids := l.s.be.Leases()
	resp := &pb.LeaseLeasesResponse{Header: l.s.header(l.s.be.Rev()), Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	return resp, nil
}

func (l *leaseServer) LeaseKeepAlive(stream grpc.BidiStreamingServer[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ttl, err := l.s.be.RenewLease(req.ID)
		if errors.Is(err, store.ErrLeaseNotFound) {
			ttl, err = 0, nil // etcd reports an unknown lease as TTL 0
		}
		if err != nil {
			return toGRPC(err)
		}
		if err := stream.Send(&pb.LeaseKeepAliveResponse{Header: l.s.header(l.s.be.Rev()), ID: req.ID, TTL: ttl}); err != nil {
			return err
		}
	}
}
