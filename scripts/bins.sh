#!/usr/bin/env bash
# bins.sh builds the external binaries Rhizome is tested against — etcd and a
# Kubernetes control plane — from the Go module proxy, and caches them.
#
#   scripts/bins.sh etcd   etcd, etcdctl                                v3.7.3
#   scripts/bins.sh kube   kube-apiserver, kube-controller-manager,
#                          kube-scheduler, kubectl                      v1.36.3
#   scripts/bins.sh all    both
#
# Binaries land in ${RHIZOME_BIN_CACHE:-$HOME/.cache/rhizome/bin}/<set>-<version>/
# (e.g. .../kube-v1.36.3/kube-apiserver) and are reused while they still run
# and report the right version. Progress goes to stderr; stdout gets only the
# directory of each set built, so `dir=$(scripts/bins.sh kube | tail -1)` works.
# Nothing is installed by hand and nothing is written inside the repo: each
# Go module is built in a throwaway module in a temp dir.
#
# Cost on a fresh 2-core machine (measured, shared with other builds): etcd
# ~1.5 min, +350 MB build cache, +200 MB module cache, 40 MB of binaries;
# kube ~9 min (kube-apiserver alone ~6 min), 2 GB peak RAM, +2.9 GB build
# cache, +600 MB module cache, 320 MB of binaries. With a warm build cache a
# rebuild takes ~25 s; with the binaries cached a run takes well under 1 s.
set -euo pipefail
shopt -s inherit_errexit # command substitutions stop at errors too

ETCD_VERSION=v3.7.3
KUBE_VERSION=v1.36.3
CACHE=${RHIZOME_BIN_CACHE:-$HOME/.cache/rhizome/bin}

log() { echo "bins.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# reports BIN WANT ARGS... succeeds if BIN runs with ARGS and prints WANT.
reports() {
	local bin=$1 want=$2 got
	shift 2
	[[ -x $bin ]] || return 1
	got=$("$bin" "$@" 2>&1) || return 1
	[[ $got == *"$want"* ]]
}

# modinfo TEMPLATE MODULE@VERSION prints facts about a module release from the
# proxy (go list -m -f TEMPLATE), outside any module.
modinfo() {
	(cd "$tmp" && GOFLAGS='' GOWORK=off go list -m -f "$1" "$2") ||
		die "cannot resolve $2 through GOPROXY=$(go env GOPROXY)"
}

# new_module NAME MODULE VERSION makes a throwaway module $tmp/NAME requiring
# MODULE@VERSION, with the go directive of MODULE's own go.mod so GODEBUG
# defaults match an upstream build, and prints its directory.
new_module() {
	local dir=$tmp/$1 module=$2 version=$3 gover
	mkdir -p "$dir"
	gover=$(modinfo '{{.GoVersion}}' "$module@$version")
	printf 'module rhizome.invalid/bins/%s\n\ngo %s\n\nrequire %s %s\n' \
		"$1" "${gover:-1.26.0}" "$module" "$version" >"$dir/go.mod"
	echo "$dir"
}

# build SETUP NAME PACKAGE ESTIMATE WANT VERSION-ARGS... builds PACKAGE as
# $out/NAME ($out and $version are the caller's) unless a binary is there
# already that runs with VERSION-ARGS and prints WANT. Only then does it call
# the function SETUP, which sets $mod (the throwaway module to build in) and
# $ldflags, so a cache hit needs neither network nor module cache. The binary
# is built and checked under a temporary name, then renamed into place: an
# interrupted build never leaves a half-written binary under the real name.
build() {
	local setup=$1 name=$2 pkg=$3 estimate=$4 want=$5
	shift 5
	if reports "$out/$name" "$want" "$@"; then
		log "$name is cached in $out"
		return
	fi
	"$setup"
	log "building $name $version (cold build takes ~$estimate)..."
	local start=$SECONDS
	partial=$out/.$name.partial
	# -mod=mod lets go fill in the fresh go.mod and go.sum; GOWORK=off keeps
	# any go.work out; CGO_ENABLED=0 gives static binaries, as upstream ships.
	# GOPROXY, GOSUMDB, GOCACHE and GOMODCACHE come from the environment.
	(cd "$mod" && GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 \
		go build -trimpath -ldflags "$ldflags" -o "$partial" "$pkg") ||
		die "go build $pkg failed"
	reports "$partial" "$want" "$@" ||
		die "built $name, but '$name $*' does not print '$want': $("$partial" "$@" 2>&1 | head -3)"
	mv -f "$partial" "$out/$name"
	partial=
	log "built $name in $((SECONDS - start))s"
}

# lock SET serialises builds of one set across processes (parallel `go test`
# packages all ask at once; one build is enough) until this script exits.
# flock(1) is util-linux; where it is missing we simply don't lock.
lock() {
	command -v flock >/dev/null || return 0
	exec 9>"$CACHE/.$1.lock"
	if ! flock -n 9; then
		log "waiting for another bins.sh that is building $1..."
		flock 9
	fi
}

# The etcd binary is the root package of the server module; etcdctl is its own
# module. Each gets its own throwaway module so it builds with exactly the
# dependency versions its release pinned. etcd's version string is a constant
# in go.etcd.io/etcd/api/v3/version, so no -X flags are needed.
etcd_module() {
	mod=$(new_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION")
	ldflags="-s -w"
}
etcdctl_module() {
	mod=$(new_module etcdctl go.etcd.io/etcd/etcdctl/v3 "$ETCD_VERSION")
	ldflags="-s -w"
}

build_etcd() {
	local out=$CACHE/etcd-$ETCD_VERSION version=$ETCD_VERSION v=${ETCD_VERSION#v}
	mkdir -p "$out"
	lock "etcd-$ETCD_VERSION"
	build etcd_module etcd go.etcd.io/etcd/server/v3 "1.5 min" "etcd Version: $v" --version
	build etcdctl_module etcdctl go.etcd.io/etcd/etcdctl/v3 "10 s" "etcdctl version: $v" version
	echo "$out"
}

# kube_module makes one throwaway module for all four Kubernetes binaries
# (once; later calls reuse it).
kube_mod=
kube_module() {
	if [[ -n $kube_mod ]]; then
		mod=$kube_mod
		return
	fi
	local gomod m staging=() release=v0.${KUBE_VERSION#v1.}
	mod=$(new_module kube k8s.io/kubernetes "$KUBE_VERSION")

	# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go,
	# ...) at the placeholder v0.0.0 and points them at ./staging/src/... with
	# replace directives, which count only when it is the main module. So we
	# replace each with its published v0.X.Y release, taking the list from
	# k8s.io/kubernetes' own go.mod: every module it both requires at v0.0.0
	# and replaces with ./staging. That leaves out sample-cli-plugin and
	# sample-controller, which it replaces but never requires (and the proxy
	# does not serve sample-cli-plugin at all).
	gomod=$(modinfo '{{.GoMod}}' "k8s.io/kubernetes@$KUBE_VERSION")
	while read -r m; do
		staging+=("-replace=$m=$m@$release")
	done < <(awk '
		$2 == "=>" && $3 ~ /^\.\/staging\// { staged[$1] = 1 }
		$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { required[$1] = 1 }
		END { for (m in required) if (m in staged) print m }' "$gomod" | sort)
	((${#staging[@]} > 0)) || die "found no staging modules in $gomod"
	(cd "$mod" && go mod edit "${staging[@]}")
	log "replaced ${#staging[@]} k8s.io staging modules with their $release releases"

	# What hack/lib/version.sh stamps into a release, in both version packages.
	# buildDate is the tag's time from the proxy, so the build is reproducible;
	# gitCommit is unknown without git and keeps its placeholder.
	local major minor date p
	IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
	date=$(modinfo '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "k8s.io/kubernetes@$KUBE_VERSION")
	ldflags="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
		ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
	done
	kube_mod=$mod
}

build_kube() {
	local out=$CACHE/kube-$KUBE_VERSION version=$KUBE_VERSION k=k8s.io/kubernetes/cmd
	local want="Kubernetes $KUBE_VERSION"
	mkdir -p "$out"
	lock "kube-$KUBE_VERSION"
	# One at a time: linking each takes 1-2 GB and the machine may be shared.
	build kube_module kube-apiserver $k/kube-apiserver "6 min" "$want" --version
	build kube_module kube-controller-manager $k/kube-controller-manager "2 min" "$want" --version
	build kube_module kube-scheduler $k/kube-scheduler "10 s" "$want" --version
	build kube_module kubectl $k/kubectl "1 min" "Client Version: $KUBE_VERSION" version --client
	echo "$out"
}

case ${1:-} in
etcd | kube | all) ;;
*)
	echo "usage: $0 etcd|kube|all" >&2
	exit 2
	;;
esac
[[ $# -eq 1 ]] || die "want exactly one argument"
command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd) # print absolute paths, whatever the caller's dir

partial= # the binary being built, if any
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rhizome-bins.XXXXXX")
trap 'rm -rf "$tmp"; [[ -z $partial ]] || rm -f "$partial"' EXIT

case $1 in
etcd) build_etcd ;;
kube) build_kube ;;
all)
	build_etcd # first: small, and the quickest check that the proxy works
	build_kube
	;;
esac
