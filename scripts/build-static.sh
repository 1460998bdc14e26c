#!/usr/bin/env bash
# Builds ./cmd/rhizome as one statically linked binary: what the container image
# ships (deploy/Dockerfile runs this script) and what the CI test of the image
# builds and runs (cmd/rhizome TestStaticBinary).
#
# automerge is a C library behind cgo, so CGO_ENABLED=0 cannot link it. Instead:
# cgo on, the pure-Go DNS resolver and user lookup (netgo, osusergo: no glibc
# NSS, which cannot be linked statically), and the external linker told to link
# statically. Needs only what any cgo build needs: gcc (its libgcc_eh.a) and
# glibc's development files, which hold the static libc.a (Debian: libc6-dev).
#
# usage: scripts/build-static.sh [OUT]   (default OUT: ./rhizome-static)
# VERSION in the environment sets what `rhizome --version` prints.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-./rhizome-static}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
CGO_ENABLED=1 go build -trimpath -buildvcs=false -tags netgo,osusergo \
  -ldflags "-X main.version=${version} -linkmode external -extldflags -static" \
  -o "$out" ./cmd/rhizome
