#!/usr/bin/env bash
# Three Rhizome sites on one machine, each in its own network namespace with its
# own kube-apiserver, as three edge sites would run. Needs root (ip netns), Go
# and a C compiler; openssl for the Kubernetes part.
#
#   deploy/demo/three-sites.sh up [--no-kube] [--cut-demo]   start, wait, print each site's status
#   deploy/demo/three-sites.sh status                        print each site's `rhizome status`
#   deploy/demo/three-sites.sh cut SITE | heal SITE          cut a site (a, b or c) off the others, heal it
#   deploy/demo/three-sites.sh down                          stop everything and remove it
#
# up builds ./cmd/rhizome, and takes kube-apiserver and kubectl from
# scripts/bins.sh kube (built through the Go module proxy: ~11 minutes the first
# time, cached in ~/.cache/rhizome/bin) or from $KUBE_BIN_DIR if set.
# --no-kube runs the Rhizome sites alone.
# --cut-demo then cuts site c off, writes on both sides, heals, and shows that
# every site ends with every write.
#
# The network (10.214.0.0/16, names starting rhzdemo):
#   root namespace 10.214.N.1/30 <-veth-> 10.214.N.2/30 site (clients, kube-apiserver, metrics)
#   site           10.214.0.N/24 <-veth-> port of a bridge in namespace rhzdemo-hub (gossip, sync)
# Cutting a site sets its bridge port down: its packets to the other sites are
# dropped, as on a failed WAN link, while you still reach its clients.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state=${RHIZOME_DEMO_DIR:-/tmp/rhizome-demo}
prefix=rhzdemo
sites=(a b c)
# A fixed demo key; a real cluster uses its own: head -c 32 /dev/urandom | base64
gossip_key=$(printf 'rhizome-demo-gossip-key-32-bytes' | base64)

say() { printf '\n== %s\n' "$*"; }
die() { printf 'three-sites: %s\n' "$*" >&2; exit 1; }

idx() { # site name -> 1-based index
  case $1 in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; *) die "no site '$1' (a, b or c)" ;; esac
}
client_ip() { echo "10.214.$(idx "$1").2"; }
peer_ip() { echo "10.214.0.$(idx "$1")"; }
ns() { echo "$prefix-$1"; }

need() {
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces); run it with sudo"
  for c in "$@"; do command -v "$c" >/dev/null || die "needs $c"; done
}

# run_in SITE NAME CMD...: start CMD in the site's namespace in the background,
# logging to $state/SITE/NAME.log, pid in $state/SITE/NAME.pid.
run_in() {
  local s=$1 name=$2
  shift 2
  ip netns exec "$(ns "$s")" setsid "$@" >"$state/$s/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$s/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "timed out waiting for $what (logs in $state)"
}

network_up() {
  ip netns add "$prefix-hub"
  ip -n "$prefix-hub" link add "${prefix}br" type bridge
  ip -n "$prefix-hub" link set "${prefix}br" up
  for s in "${sites[@]}"; do
    local i n
    i=$(idx "$s") n=$(ns "$s")
    ip netns add "$n"
    ip -n "$n" link set lo up
    ip link add "${prefix}${s}p" type veth peer name "${prefix}${s}b"
    ip link set "${prefix}${s}p" netns "$n"
    ip link set "${prefix}${s}b" netns "$prefix-hub"
    ip -n "$prefix-hub" link set "${prefix}${s}b" master "${prefix}br" up
    ip -n "$n" addr add "$(peer_ip "$s")/24" dev "${prefix}${s}p"
    ip -n "$n" link set "${prefix}${s}p" up
    ip link add "${prefix}${s}r" type veth peer name "${prefix}${s}c"
    ip link set "${prefix}${s}c" netns "$n"
    ip addr add "10.214.$i.1/30" dev "${prefix}${s}r"
    ip link set "${prefix}${s}r" up
    ip -n "$n" addr add "$(client_ip "$s")/30" dev "${prefix}${s}c"
    ip -n "$n" link set "${prefix}${s}c" up
  done
}

build_rhizome() {
  say "building rhizome"
  mkdir -p "$state/bin"
  (cd "$root" && CGO_ENABLED=1 go build -o "$state/bin/rhizome" ./cmd/rhizome)
  "$state/bin/rhizome" --version
}

start_sites() {
  for s in "${sites[@]}"; do
    mkdir -p "$state/$s"
    local args=(serve --name "$s" --data-dir "$state/$s/data"
      --listen-client-urls "http://$(client_ip "$s"):2379,http://127.0.0.1:2379"
      --advertise-client-urls "http://$(client_ip "$s"):2379"
      --listen-metrics-urls "http://$(client_ip "$s"):2381"
      --listen-peer-urls "http://$(peer_ip "$s"):2380"
      --gossip-addr "$(peer_ip "$s"):7946"
      --initial-cluster-token rhizome-demo
      # LAN failure detection, so a cut shows within seconds; WAN (the
      # default) declares a site dead after about a minute.
      --gossip-lan)
    [[ $s == a ]] || args+=(--join "$(peer_ip a):7946")
    RHIZOME_GOSSIP_KEY=$gossip_key run_in "$s" rhizome "$state/bin/rhizome" "${args[@]}"
    wait_for "site $s" 30 curl -sf "http://$(client_ip "$s"):2381/health"
  done
}

# pki makes a CA, a serving certificate per site, an admin client certificate
# and the service-account key pair kube-apiserver needs.
pki() {
  local d=$state/pki
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rhizome-demo-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -out "$d/admin.crt" 2>/dev/null
  for s in "${sites[@]}"; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver-$s" \
      -keyout "$d/$s.key" -out "$d/$s.csr" 2>/dev/null
    printf 'subjectAltName=IP:%s,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default\n' "$(client_ip "$s")" >"$d/$s.ext"
    openssl x509 -req -in "$d/$s.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/$s.ext" -out "$d/$s.crt" 2>/dev/null
  done
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

kubeconfig() { # SITE -> path of a kubeconfig for that site's apiserver
  local f=$state/$1/kubeconfig
  if [[ ! -f $f ]]; then
    cat >"$f" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: $1, cluster: {server: "https://$(client_ip "$1"):6443", certificate-authority: $state/pki/ca.crt}}]
users: [{name: admin, user: {client-certificate: $state/pki/admin.crt, client-key: $state/pki/admin.key}}]
contexts: [{name: $1, context: {cluster: $1, user: admin}}]
current-context: $1
EOF
  fi
  echo "$f"
}

has_kubectl() { [[ -s $state/kubebin && -x $(cat "$state/kubebin")/kubectl ]]; }

kctl() { # SITE kubectl-args...
  local s=$1
  shift
  "$(cat "$state/kubebin")/kubectl" --kubeconfig "$(kubeconfig "$s")" "$@"
}

start_kube() {
  if [[ -n ${KUBE_BIN_DIR:-} ]]; then
    echo "$KUBE_BIN_DIR" >"$state/kubebin"
  else
    say "kube-apiserver and kubectl (scripts/bins.sh kube; the first build takes minutes)"
    (cd "$root" && bash scripts/bins.sh kube) | tail -1 >"$state/kubebin"
  fi
  local bin
  bin=$(cat "$state/kubebin")
  [[ -x $bin/kube-apiserver ]] || die "scripts/bins.sh kube printed no binary directory"
  pki
  for s in "${sites[@]}"; do
    run_in "$s" kube-apiserver "$bin/kube-apiserver" \
      --etcd-servers=http://127.0.0.1:2379 \
      --bind-address="$(client_ip "$s")" --advertise-address="$(client_ip "$s")" --secure-port=6443 \
      --cert-dir="$state/$s/apiserver-certs" \
      --tls-cert-file="$state/pki/$s.crt" --tls-private-key-file="$state/pki/$s.key" \
      --client-ca-file="$state/pki/ca.crt" \
      --service-account-issuer=https://kubernetes.default.svc \
      --service-account-key-file="$state/pki/sa.pub" \
      --service-account-signing-key-file="$state/pki/sa.key" \
      --service-cluster-ip-range=10.96.0.0/16 \
      --authorization-mode=RBAC
  done
  for s in "${sites[@]}"; do
    wait_for "kube-apiserver at site $s" 180 curl -sf --cacert "$state/pki/ca.crt" \
      --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" "https://$(client_ip "$s"):6443/readyz"
    # Every site gets its kubeconfig now, not only the first one kubectl uses.
    kubeconfig "$s" >/dev/null
  done
}

site_status() { # [SITE...] (default: all)
  local which=("$@")
  ((${#which[@]})) || which=("${sites[@]}")
  for s in "${which[@]}"; do
    say "rhizome status at site $s"
    "$state/bin/rhizome" status --endpoints "http://$(client_ip "$s"):2379" || true
  done
}

# members_ok: every site sees the two others reachable.
members_ok() {
  for s in "${sites[@]}"; do
    local n
    n=$(curl -sf "http://$(client_ip "$s"):2379/rhizome/status" |
      grep -oi '"reachable": *true' | wc -l)
    ((n >= 2)) || return 1
  done
}

set_port() { ip -n "$prefix-hub" link set "${prefix}${1}b" "$2"; }

etcdctl() { # SITE etcdctl-args...
  local s=$1
  shift
  "$(cat "$state/etcdbin")/etcdctl" --endpoints "$(client_ip "$s"):2379" "$@"
}

# everywhere CMD ARGS...: CMD SITE ARGS... succeeds at every site.
everywhere() {
  local cmd=$1
  shift
  for s in "${sites[@]}"; do "$cmd" "$s" "$@" >/dev/null 2>&1 || return 1; done
}
has_key() { [[ -n $(etcdctl "$1" get --print-value-only "$2") ]]; }

cut_demo() {
  say "etcdctl (scripts/bins.sh etcd)"
  (cd "$root" && bash scripts/bins.sh etcd) | tail -1 >"$state/etcdbin"
  say "cutting site c off: ip -n $prefix-hub link set ${prefix}cb down"
  set_port c down
  say "writing on both sides of the cut (every write succeeds: it is acknowledged locally)"
  etcdctl a put /demo/from-a "written at a during the cut"
  etcdctl c put /demo/from-c "written at c during the cut"
  if has_kubectl; then
    kctl a create namespace cut-side-ab
    kctl c create namespace cut-side-c
  fi
  # LAN gossip declares the cut site suspect, then dead, within seconds.
  sleep 10
  say "site c does not have a's write yet:"
  etcdctl c get /demo/ --prefix
  site_status a c
  say "healing site c: ip -n $prefix-hub link set ${prefix}cb up"
  set_port c up
  wait_for "every site to hold both writes" 120 everywhere has_key /demo/from-a
  wait_for "every site to hold both writes" 60 everywhere has_key /demo/from-c
  ! has_kubectl || wait_for "every apiserver to list both namespaces" 60 everywhere kctl get namespace cut-side-ab cut-side-c
  say "every site holds every write:"
  for s in "${sites[@]}"; do
    echo "site $s: $(etcdctl "$s" get /demo/ --prefix --keys-only | tr -s '\n' ' ')"
    ! has_kubectl || echo "  namespaces: $(kctl "$s" get namespaces -o name | grep cut-side | tr '\n' ' ')"
  done
}

up() {
  local kube=1 demo=0
  for a in "$@"; do
    case $a in
      --no-kube) kube=0 ;;
      --cut-demo) demo=1 ;;
      *) die "unknown option $a" ;;
    esac
  done
  need ip go curl
  ((kube == 0)) || need openssl
  [[ ! -e $state ]] || die "$state exists: run '$0 down' first"
  ip netns list | grep -q "^$prefix-" && die "namespaces $prefix-* exist: run '$0 down' first"
  mkdir -p "$state"
  build_rhizome
  say "network namespaces"
  network_up
  say "starting sites a, b, c"
  start_sites
  wait_for "the three sites to see each other" 60 members_ok
  ((kube == 0)) || start_kube
  site_status
  printf '\nThree sites are up (state and logs in %s):\n' "$state"
  for s in "${sites[@]}"; do
    printf '  site %s: clients http://%s:2379, metrics http://%s:2381/metrics' "$s" "$(client_ip "$s")" "$(client_ip "$s")"
    [[ ! -s $state/kubebin ]] || printf ', kube-apiserver https://%s:6443' "$(client_ip "$s")"
    echo
  done
  if has_kubectl; then
    echo
    for s in "${sites[@]}"; do
      printf 'kubectl at site %s: %s/kubectl --kubeconfig %s get ns\n' "$s" "$(cat "$state/kubebin")" "$state/$s/kubeconfig"
    done
  fi
  cat <<EOF
Cut site c off the others:  $0 cut c     (ip -n $prefix-hub link set ${prefix}cb down)
Heal it:                    $0 heal c    (ip -n $prefix-hub link set ${prefix}cb up)
Stop and clean up:          $0 down
EOF
  ((demo == 0)) || { cut_demo; site_status; }
}

down() {
  need ip
  for f in "$state"/*/*.pid; do
    [[ -f $f ]] || continue
    local pid
    pid=$(cat "$f")
    # setsid made each process a group leader: stop the group.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  sleep 2
  for f in "$state"/*/*.pid; do
    [[ -f $f ]] && kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
  done
  for n in $(ip netns list | awk -v p="$prefix-" 'index($1, p) == 1 {print $1}'); do
    ip netns delete "$n"
  done
  for l in $(ip -o link show | awk -F': ' -v p="$prefix" 'index($2, p) == 1 {split($2, a, "@"); print a[1]}'); do
    ip link delete "$l" 2>/dev/null || true
  done
  rm -rf "$state"
  echo "three-sites: down"
}

cmd=${1:-}
shift || true
case $cmd in
  up) up "$@" ;;
  down) down ;;
  status) site_status "$@" ;;
  cut | heal)
    need ip
    idx "${1:?$cmd which site (a, b or c)?}" >/dev/null
    if [[ $cmd == cut ]]; then set_port "$1" down; else set_port "$1" up; fi
    echo "site $1: $cmd"
    ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
