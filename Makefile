# The project's two entry points (README): `make run` and `make test`.
export CGO_ENABLED := 1

# Where `make build` puts the binary, and the version it reports
# (`rhizome --version`); override either: `make build BIN=/usr/local/bin/rhizome`.
BIN ?= ./rhizome
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: run test build static docs fuzz

# One site with a default data directory (./default.rhizome), clients on
# 127.0.0.1:2379. The recipe execs the built binary, so Ctrl-C reaches rhizome
# alone; it shuts down cleanly and exits 0, and make reports no error.
run: build
	exec $(BIN) serve

build:
	go build -ldflags '-X main.version=$(VERSION)' -o $(BIN) ./cmd/rhizome

# The statically linked binary the container image ships (deploy/Dockerfile).
static:
	VERSION=$(VERSION) bash scripts/build-static.sh $(BIN)

# Regenerate the flag reference (a test fails while it is stale).
docs:
	go run ./cmd/rhizome serve --help-md > docs/flags.md

# The whole test suite. The external binaries (etcd/etcdctl v3.7.3, Kubernetes
# v1.36.3) are built through the Go module proxy and cached first, as their own
# step, so a cold build (~11 min) does not count against a test timeout.
# -count=1: several tests build and run ./cmd/rhizome or other packages as separate
# processes, which go test's result cache cannot see, so cached passes could be stale.
test:
	bash scripts/bins.sh all
	go vet ./...
	go test -count=1 -timeout 60m ./...

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target at a time);
# new inputs that fail are kept under the package's testdata/fuzz/ and replayed
# by every later `go test`.
FUZZTIME ?= 30s
# Each target's seed corpus, from real messages and values, is in its
# package's testdata/fuzz/<target>/.
FUZZ_TARGETS := ./sync/peer:FuzzDecode ./sync/peer:FuzzHandle ./sync/peer:FuzzDecompress ./crdt:FuzzDecodeChange \
	./crdt:FuzzDecodeDoc ./crdt:FuzzValue ./crdt/kube:FuzzToJSON ./store:FuzzRecords \
	./etcdshim:FuzzRequest ./crdt/kube/validate:FuzzObject
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done
