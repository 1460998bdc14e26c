package etcdshim

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rhizome-kv/rhizome/store"
)

var (
	errKeyNotFound     = errors.New("etcdshim: key not found")
	errRequestTooLarge = errors.New("etcdshim: request is too large")
	errAuthNotEnabled  = errors.New("etcdshim: authentication is not enabled")
)

// grpcErrors maps every error a handler can meet to the gRPC error etcd sends.
var grpcErrors = []struct {
	err  error
	grpc error
}{
	{store.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{store.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{store.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{store.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
	{store.ErrLeaseTTLLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{store.ErrClosed, rpctypes.ErrGRPCStopped},
	{store.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{errKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{errRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{errAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
	{context.Canceled, rpctypes.ErrGRPCCanceled},
	{context.DeadlineExceeded, rpctypes.ErrGRPCDeadlineExceeded},
}

// toGRPC returns the gRPC error for err.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range grpcErrors {
		if errors.Is(err, e.err) {
			return e.grpc
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// Rhizome's own answers, for what etcd does and Rhizome does not; they start
// "rhizome:" so that no client takes them for etcd's.
var (
	// errGRPCAuthUnsupported refuses AuthEnable. Unimplemented rather than etcd's
	// FailedPrecondition (root user or role missing): no change of state would
	// make it succeed.
	errGRPCAuthUnsupported = status.Error(codes.Unimplemented,
		"rhizome: authentication is not supported (authenticate clients with TLS client certificates: --client-cert-auth)")
	// errGRPCUsersRolesUnsupported answers every User* and Role* call.
	errGRPCUsersRolesUnsupported = unimplemented("authentication (users and roles)")
)

func unimplemented(what string) error {
	return status.Errorf(codes.Unimplemented, "rhizome: %s is not supported", what)
}
