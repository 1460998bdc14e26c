// Package upstream runs Kubernetes' own storage test suites (the tests of
// k8s.io/apiserver/pkg/storage/etcd3 and of its cacher) against Rhizome, unmodified:
// `go test -overlay` swaps the suites' embedded-etcd test server for
// testdata/test_server.go, which starts a Rhizome site instead.
package upstream
