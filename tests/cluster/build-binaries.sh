#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl), the kubelet (for the
# test node, tests/node) and etcd from the Go module proxy into a cache
# outside the repository, keyed by version. ~15 min and ~3 GB RAM cold; a
# no-op when the binaries are there. Prints the bin directory.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cairn/k8s-$K8S_VERSION
bin=$cache/bin
mkdir -p "$bin"

k8s_cmds="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet"
have_all() {
	for b in $k8s_cmds; do [ -x "$bin/$b" ] || return 1; done
}
if have_all && [ -x "$bin/etcd" ] && [ -x "$bin/etcdutl" ]; then
	echo "$bin"
	exit 0
fi
export GOFLAGS=-mod=mod

if ! have_all; then
	src=$cache/k8s-tools
	rm -rf "$src" && mkdir -p "$src" && cd "$src"
	modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
	go mod init cairn-k8s-tools >/dev/null 2>&1
	go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
	# Kubernetes requires its staging modules at v0.0.0 with local replaces;
	# point each at the published v0.X.Y instead (sample-* are not published).
	staging_version="v0.${K8S_VERSION#v1.}"
	sed -n '/^replace (/,/^)/p' "$modfile" | awk '/=> .\/staging/ {print $1}' | grep -v '^k8s.io/sample-' |
		while read -r m; do go mod edit -replace "$m=$m@$staging_version"; done
	pkgs=""
	for b in $k8s_cmds; do pkgs="$pkgs k8s.io/kubernetes/cmd/$b"; done
	# shellcheck disable=SC2086 # one package each
	go get -tool $pkgs >&2
	minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
	ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
	# shellcheck disable=SC2086
	go build -ldflags "$ldflags" -o "$bin/" $pkgs >&2
fi

if [ ! -x "$bin/etcd" ] || [ ! -x "$bin/etcdutl" ]; then
	src=$cache/etcd-tools
	rm -rf "$src" && mkdir -p "$src" && cd "$src"
	printf 'module cairn-etcd-tools\n\ngo 1.26.0\n' >go.mod
	go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdutl/v3@$ETCD_VERSION" >&2
	go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3 >&2
	# etcdutl checks and restores etcd snapshots (cairn etcd snapshot's tests)
	go build -ldflags "-s -w" -o "$bin/etcdutl" go.etcd.io/etcd/etcdutl/v3 >&2
fi
echo "$bin"
