package etcdshim

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	rev := m.s.be.Rev()
	size := m.s.be.Size()
	resp := &pb.StatusResponse{
		Header:           m.s.header(rev),
		Version:          Version,
		DbSize:           size,
		DbSizeInUse:      size,
		DbSizeQuota:      m.s.be.Quota(),
		Leader:           m.s.cfg.MemberID, // every site leads itself
		RaftIndex:        uint64(rev),
		RaftTerm:         1,
		RaftAppliedIndex: uint64(rev),
		StorageVersion:   Version,
	}
	for _, a := range m.alarms(pb.AlarmType_NONE) {
		resp.Errors = append(resp.Errors, a.String())
	}
	return resp, nil
}

// Alarm serves etcd's alarms; a site has one, NOSPACE, raised by the store when
// a write would take it past its quota (see the store's quota.go). Like etcd,
// activating an alarm that is raised returns it, deactivating one that is not
// returns nothing.
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp := &pb.AlarmResponse{Header: m.s.header(m.s.be.Rev())}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = m.alarms(r.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm != pb.AlarmType_NOSPACE {
			return nil, unimplemented("alarm " + r.Alarm.String())
		}
		if err := m.s.be.RaiseNoSpace(); err != nil {
			return nil, toGRPC(err)
		}
		resp.Alarms = m.alarms(r.Alarm)
	case pb.AlarmRequest_DEACTIVATE:
		if r.Alarm != pb.AlarmType_NOSPACE || r.MemberID != m.s.cfg.MemberID {
			break
		}
		was, err := m.s.be.DisarmNoSpace()
		if err != nil {
			return nil, toGRPC(err)
		}
		if was {
			resp.Alarms = []*pb.AlarmMember{{MemberID: m.s.cfg.MemberID, Alarm: pb.AlarmType_NOSPACE}}
		}
	}
	return resp, nil
}

// alarms lists the raised alarms of a type (NONE: of every type).
func (m *maintenanceServer) alarms(typ pb.AlarmType) []*pb.AlarmMember {
	if !m.s.be.NoSpace() || (typ != pb.AlarmType_NONE && typ != pb.AlarmType_NOSPACE) {
		return nil
	}
	return []*pb.AlarmMember{{MemberID: m.s.cfg.MemberID, Alarm: pb.AlarmType_NOSPACE}}
}

// Defragment gives back the space of deleted and compacted data (the store's
// Defragment); writes wait while badger writes its memtables out.
func (m *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := m.s.be.Defragment(ctx); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.DefragmentResponse{Header: m.s.header(m.s.be.Rev())}, nil
}

func (m *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	h, rev, _, err := m.s.be.HashKV(0)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashResponse{Header: m.s.header(rev), Hash: h}, nil
}

func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	h, rev, compact, err := m.s.be.HashKV(r.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashKVResponse{Header: m.s.header(m.s.be.Rev()), Hash: h, CompactRevision: compact, HashRevision: rev}, nil
}

// snapshotChunk is how many bytes one SnapshotResponse carries, as etcd sends.
const snapshotChunk = 32 * 1024

// Snapshot streams a backup of the whole store from one read view: a Rhizome
// backup file (store.Backup) in etcd's envelope, a multiple of 512 bytes followed
// by their SHA-256, which `etcdctl snapshot save` checks for. Restore it with
// `rhizome snapshot restore`; etcdutl cannot read it (it is not a bbolt file).
// RemainingBytes is estimated from the store's sizes and is 0 on the last message.
func (m *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, srv grpc.ServerStreamingServer[pb.SnapshotResponse]) error {
	b, err := m.s.be.OpenBackup()
	if err != nil {
		return toGRPC(err)
	}
	defer b.Close()
	info := b.Info()
	log := m.s.cfg.Logger.With("revision", info.Revision, "estimated-bytes", info.Size)
	log.Info("sending a snapshot to a client")
	w := &snapshotSender{srv: srv, estimate: info.Size}
	n, err := b.WriteTo(w)
	if err == nil {
		err = w.flush(true)
	}
	if err != nil {
		log.Warn("sending a snapshot failed", "sent-bytes", w.sent, "err", err)
		return toGRPC(err)
	}
	log.Info("sent a snapshot", "bytes", n)
	return nil
}

// snapshotSender cuts what a backup writes into SnapshotResponses. The last
// chunk is held back until the end, so that it alone says RemainingBytes 0.
type snapshotSender struct {
	srv      grpc.ServerStreamingServer[pb.SnapshotResponse]
	buf      []byte
	sent     int64
	estimate int64
}

func (w *snapshotSender) Write(p []byte) (int, error) {
	total := len(p)
	for len(w.buf)+len(p) > snapshotChunk {
		n := snapshotChunk - len(w.buf)
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
		if err := w.flush(false); err != nil {
			return 0, err
		}
	}
	w.buf = append(w.buf, p...)
	return total, nil
}

func (w *snapshotSender) flush(last bool) error {
	w.sent += int64(len(w.buf))
	remaining := int64(0)
	if !last {
		remaining = max(w.estimate-w.sent, 1)
	}
	// Send may keep the slice until the message is out: every message gets its own.
	resp := &pb.SnapshotResponse{RemainingBytes: uint64(remaining), Blob: w.buf, Version: Version}
	w.buf = make([]byte, 0, snapshotChunk)
	return w.srv.Send(resp)
}

func (m *maintenanceServer) MoveLeader(context.Context, *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return nil, unimplemented("MoveLeader (sites have no leader)")
}

func (m *maintenanceServer) Downgrade(context.Context, *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, unimplemented("Downgrade")
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	members := []Member{{Name: c.s.cfg.Name, ClientURLs: c.s.cfg.AdvertiseClientURLs}}
	if c.s.cfg.Members != nil {
		members = c.s.cfg.Members()
	}
	resp := &pb.MemberListResponse{Header: c.s.header(c.s.be.Rev())}
	for _, m := range members {
		resp.Members = append(resp.Members, &pb.Member{ID: hashID("member/" + m.Name), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs})
	}
	return resp, nil
}

func (c *clusterServer) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, unimplemented("MemberAdd (sites join with --join)")
}

func (c *clusterServer) MemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, unimplemented("MemberRemove")
}

func (c *clusterServer) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, unimplemented("MemberUpdate")
}

func (c *clusterServer) MemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, unimplemented("MemberPromote")
}

// authServer reports auth as disabled, as a fresh etcd does, and cannot enable it:
// Rhizome authenticates clients with TLS client certificates only. Every Auth call
// is answered here (UnsafeAuthServer makes a new one a compile error), never by
// gRPC's default "method not implemented".
type authServer struct {
	pb.UnsafeAuthServer
	s *Server
}

func (a *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return &pb.AuthStatusResponse{Header: a.s.header(a.s.be.Rev()), Enabled: false, AuthRevision: 1}, nil
}

func (a *authServer) AuthEnable(context.Context, *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return nil, errGRPCAuthUnsupported
}

// AuthDisable succeeds, as etcd's does when auth is already disabled.
func (a *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return &pb.AuthDisableResponse{Header: a.s.header(a.s.be.Rev())}, nil
}

// Authenticate answers etcd's "authentication is not enabled", on which etcd
// clients given a user name and password carry on without a token.
func (a *authServer) Authenticate(context.Context, *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return nil, toGRPC(errAuthNotEnabled)
}

func (a *authServer) UserAdd(context.Context, *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) UserGet(context.Context, *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) UserList(context.Context, *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) UserDelete(context.Context, *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) UserChangePassword(context.Context, *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) UserGrantRole(context.Context, *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) UserRevokeRole(context.Context, *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) RoleAdd(context.Context, *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) RoleGet(context.Context, *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) RoleList(context.Context, *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) RoleDelete(context.Context, *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) RoleGrantPermission(context.Context, *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}

func (a *authServer) RoleRevokePermission(context.Context, *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return nil, errGRPCUsersRolesUnsupported
}
