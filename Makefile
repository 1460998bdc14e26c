# The project's two entry points (README): `make run` and `make test`.
export CGO_ENABLED := 1

.PHONY: run test build

# One site with a default data directory (./default.rhizome), clients on 127.0.0.1:2379.
run:
	go run ./cmd/rhizome serve

build:
	go build -o rhizome ./cmd/rhizome

# The whole test suite. The external binaries (etcd/etcdctl v3.7.3, Kubernetes
# v1.36.3) are built through the Go module proxy and cached first, as their own
# step, so a cold build (~11 min) does not count against a test timeout.
# -count=1: several tests build and run ./cmd/rhizome or other packages as separate
# processes, which go test's result cache cannot see, so cached passes could be stale.
test:
	bash scripts/bins.sh all
	go vet ./...
	go test -count=1 -timeout 60m ./...
