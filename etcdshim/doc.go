// Package etcdshim serves etcd's v3 gRPC API (KV, Watch, Lease, Maintenance,
// Cluster) over a Rhizome store and watch hub, closely enough that etcd clients,
// etcdctl and an unmodified kube-apiserver use it as they would etcd.
//
// It is the only package that speaks etcd protobufs. Request validation, Txn
// evaluation, range sorting and filtering follow etcd v3.7 (etcdserver/txn and
// api/v3rpc), and every error a client sees is etcd's own gRPC error, mapped in
// exactly one table (errors.go).
package etcdshim
