package etcdshim_test

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rhizome-kv/rhizome/internal/etcdpair"
)

// TestAuth calls every Auth RPC over gRPC. Rhizome has authentication disabled
// and cannot enable it: the calls etcd answers the same way on a server without
// auth must answer exactly as a fresh etcd v3.7 does; the others must give
// Rhizome's own clear error, never gRPC's default "method not implemented".
func TestAuth(t *testing.T) {
	opts := etcdpair.Options{NoFsync: true}
	_, rhEP := etcdpair.StartRhizome(t, opts)
	rhizome, etcd := dial(t, "rhizome", rhEP), dial(t, "etcd", etcdpair.StartEtcd(t, opts))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const (
		authUnsupported       = "rhizome: authentication is not supported (authenticate clients with TLS client certificates: --client-cert-auth)"
		usersRolesUnsupported = "rhizome: authentication (users and roles) is not supported"
	)
	type call func(c pb.AuthClient) (proto.Message, error)
	tests := []struct {
		method string
		call   call
		// want is Rhizome's answer: a response (its header normalized) or, when
		// code is not OK, an error.
		want proto.Message
		code codes.Code
		msg  string
		// likeEtcd: a fresh etcd answers the same.
		likeEtcd bool
	}{
		{method: "AuthStatus", call: func(c pb.AuthClient) (proto.Message, error) { return c.AuthStatus(ctx, &pb.AuthStatusRequest{}) },
			want: &pb.AuthStatusResponse{Header: &pb.ResponseHeader{Revision: 1}, Enabled: false, AuthRevision: 1}, likeEtcd: true},
		{method: "AuthDisable", call: func(c pb.AuthClient) (proto.Message, error) { return c.AuthDisable(ctx, &pb.AuthDisableRequest{}) },
			want: &pb.AuthDisableResponse{Header: &pb.ResponseHeader{Revision: 1}}, likeEtcd: true},
		{method: "Authenticate", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.Authenticate(ctx, &pb.AuthenticateRequest{Name: "root", Password: "secret"})
		}, code: codes.FailedPrecondition, msg: "etcdserver: authentication is not enabled", likeEtcd: true},
		{method: "AuthEnable", call: func(c pb.AuthClient) (proto.Message, error) { return c.AuthEnable(ctx, &pb.AuthEnableRequest{}) },
			code: codes.Unimplemented, msg: authUnsupported},
		{method: "UserAdd", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "u", Password: "p"})
		}, code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "UserGet", call: func(c pb.AuthClient) (proto.Message, error) { return c.UserGet(ctx, &pb.AuthUserGetRequest{Name: "u"}) },
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "UserList", call: func(c pb.AuthClient) (proto.Message, error) { return c.UserList(ctx, &pb.AuthUserListRequest{}) },
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "UserDelete", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: "u"})
		},
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "UserChangePassword", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: "u", Password: "q"})
		}, code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "UserGrantRole", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "u", Role: "r"})
		}, code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "UserRevokeRole", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: "u", Role: "r"})
		}, code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "RoleAdd", call: func(c pb.AuthClient) (proto.Message, error) { return c.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "r"}) },
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "RoleGet", call: func(c pb.AuthClient) (proto.Message, error) { return c.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: "r"}) },
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "RoleList", call: func(c pb.AuthClient) (proto.Message, error) { return c.RoleList(ctx, &pb.AuthRoleListRequest{}) },
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "RoleDelete", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: "r"})
		},
			code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "RoleGrantPermission", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "r"})
		}, code: codes.Unimplemented, msg: usersRolesUnsupported},
		{method: "RoleRevokePermission", call: func(c pb.AuthClient) (proto.Message, error) {
			return c.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("k")})
		}, code: codes.Unimplemented, msg: usersRolesUnsupported},
	}

	tested := map[string]bool{}
	for _, tc := range tests {
		tested[tc.method] = true
		t.Run(tc.method, func(t *testing.T) {
			resp, err := tc.call(rhizome.auth)
			if tc.code == codes.OK {
				if err != nil {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
				if normalize(resp); !proto.Equal(resp, tc.want) {
					t.Errorf("got %v, want %v", resp, tc.want)
				}
			} else if s, _ := status.FromError(err); err == nil || s.Code() != tc.code || s.Message() != tc.msg {
				t.Errorf("got %s (response %v), want error %s: %s", show(resp, err), resp, tc.code, tc.msg)
			}
			if tc.likeEtcd {
				if got, want := show(resp, err), show(tc.call(etcd.auth)); got != want {
					t.Errorf("rhizome and etcd differ:\n--- etcd\n%s\n--- rhizome\n%s", want, got)
				}
			}
		})
	}
	for _, m := range pb.Auth_ServiceDesc.Methods {
		if !tested[m.MethodName] {
			t.Errorf("Auth RPC %s is not tested", m.MethodName)
		}
	}

	// Because Authenticate answers etcd's "not enabled", an etcd client given a
	// user name and password carries on without a token, as it does with etcd.
	t.Run("client with credentials", func(t *testing.T) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{rhEP}, DialTimeout: 10 * time.Second,
			Username: "root", Password: "secret", Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("put with credentials: %v", err)
		}
	})
}
