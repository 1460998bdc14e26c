// Package kube runs an unmodified Kubernetes control plane on loopback for
// tests and benchmarks: a datastore — a `rhizome serve` process or a real
// etcd process — then kube-apiserver against it, then (as configured)
// kube-controller-manager and kube-scheduler.
//
// Start generates every certificate and key in Go (a cluster CA, serving
// certificates for 127.0.0.1/localhost, client certificates for the admin
// in system:masters and for the controller manager and scheduler under
// their bootstrap RBAC names, a separate CA for the datastore, the service
// account signing key) and the kubeconfigs carrying them; nothing is read
// from the machine except the binaries of internal/testbin and a Rhizome
// built by BuildRhizome. Ports are picked free and a component that loses
// its port to another process is restarted on fresh ones.
//
// Start returns once each component answers its health endpoint
// (kube-apiserver's /readyz). The test gets an admin kubeconfig, a kubectl
// runner, client-go typed and dynamic clients, an etcd client to the
// datastore, and the apiserver's metrics. Each component's output goes to
// its own log file; if the test fails, the tails of the logs are logged.
// Everything is stopped (SIGTERM, then SIGKILL after a grace period) when
// the test that started it ends, and on Linux the kernel kills the
// components if the test process dies.
//
// There is no kubelet: Nodes registers Node objects and plays just enough
// kubelet (Lease renewal, pods marked Running and Ready, terminating pods
// deleted) for controllers and the scheduler to behave as on a real
// cluster.
//
// The package is test support: it takes a testing.TB and fails it; its
// tests are the end-to-end scenarios run on Rhizome and on etcd with the
// same assertions.
package kube
