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
// components if the test process dies: every component runs through
// internal/testbin's process starter (StartProcess), as every other server
// of the tests and benchmarks does.
//
// Several control planes make one multi-site cluster: they share a PKI
// (Config.PKI), each runs in its own network namespace (Config.Namespace,
// reached through it by every client of the harness) with its own hostname
// (Config.Hostname: kube-apiserver's identity Lease and the controllers'
// leader-election identities follow it), its datastore gets the site's peer
// and gossip flags (Config.DatastoreArgs), and a joining site's apiserver
// waits for the cluster's state (Config.AfterDatastore, WaitKey). With
// Config.RestartDelay the harness supervises kube-controller-manager and
// kube-scheduler as systemd's Restart=always does: both exit when they lose
// their leader-election lease.
//
// There is no kubelet: Nodes registers Node objects and plays just enough
// kubelet (Lease renewal, pods marked Running and Ready, terminating pods
// deleted, and with NodesConfig.CompleteAfter Job pods completed) for
// controllers and the scheduler to behave as on a real cluster. RunNodes
// does the same for a command (`rhizome bench edge`).
//
// The package is test support: it takes a testing.TB and fails it; its
// tests are the end-to-end scenarios run on Rhizome and on etcd with the
// same assertions.
package kube
