// Package testbin gives tests the external binaries Rhizome is compared
// against: etcd and etcdctl, and a Kubernetes control plane (kube-apiserver,
// kube-controller-manager, kube-scheduler, kubectl).
//
// It never looks on PATH and never uses anything installed by hand. It runs
// the project's scripts/bins.sh, which builds pinned versions from the Go
// module proxy into a cache directory (RHIZOME_BIN_CACHE, by default
// ~/.cache/rhizome/bin) and reuses them afterwards. The versions are pinned
// in that script and nowhere else.
//
// Each set is built at most once per test process (sync.Once); concurrent
// test processes are serialised by a lock in the script, so `go test ./...`
// builds each set once. The script's progress is streamed to the log of the
// test that triggered the build; if the build fails, that test and every
// later caller fail with the script's output.
//
// A cold build takes minutes (etcd about 1.5, Kubernetes about 9 on two
// cores), longer than go test's default 10-minute -timeout allows for the
// Kubernetes set. Run `scripts/bins.sh all` before the tests (as CI does), or
// give go test a longer -timeout.
//
// This package is test support: it uses only the standard library and is
// imported only from _test.go files.
package testbin
