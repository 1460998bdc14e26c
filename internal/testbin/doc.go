// Package testbin gives tests and benchmarks the external binaries Rhizome
// is compared against, and one way to run them.
//
// Binaries: etcd and etcdctl, and a Kubernetes control plane
// (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl). It
// never looks on PATH and never uses anything installed by hand. It runs the
// project's scripts/bins.sh, which builds pinned versions from the Go module
// proxy into a cache directory (RHIZOME_BIN_CACHE, by default
// ~/.cache/rhizome/bin) and reuses them afterwards. The versions are pinned
// in that script and nowhere else. Etcd and Kube fail a test; LoadEtcd and
// LoadKube return an error, for commands such as `rhizome bench`.
//
// Each set is built at most once per process (sync.Once, the first caller's
// progress writer sees the script's output); concurrent processes are
// serialised by a lock in the script, so `go test ./...` builds each set
// once. If the build fails, that caller and every later one get the
// script's output.
//
// A cold build takes minutes (etcd about 1.5, Kubernetes about 9 on two
// cores), longer than go test's default 10-minute -timeout allows for the
// Kubernetes set. Run `scripts/bins.sh all` before the tests (as CI does), or
// give go test a longer -timeout.
//
// Processes: StartProcess runs one server with its output in a log file;
// WaitReady polls a readiness check until it passes, the process exits or a
// timeout passes (errors carry the log's tail); Stop sends SIGTERM and kills
// after a grace period; PortInUse and FreePort support the start-again-on-
// fresh-ports loop that free-port picking needs. On Linux a started process
// dies with the process that started it. A process that must run inside a
// network namespace or under another wrapper gets it through Path and Args
// (ip netns exec NS BIN ..., unshare -u -- ...): wrappers that exec in place
// keep the process id and the parent-death signal the binary's. Every
// server of the tests and benchmarks starts here, and so does every
// long-running command whose output is read as it comes (`kubectl get -w`):
// with StreamStdout its standard output goes to Process.Stdout instead of
// the log, and Stop closes that reader.
//
// Run is for one-shot commands (ip, ss, git, a CLI under test): it returns
// their standard output, or a *RunError that keeps their standard error.
// RunCmd does the same with standard input and returns both outputs. The
// harnesses (bench, internal/kube, internal/netdelay) start every process
// through this package.
//
// The package uses only the standard library.
package testbin
