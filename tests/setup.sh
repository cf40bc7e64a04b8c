#!/usr/bin/env bash
# Installs what the tests need on a machine that may have nothing but Go, gcc
# and apt; idempotent and quick when everything is there. `make test` runs it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# --- Debian packages the tests need ------------------------------------------
#   make    runs the test command
#   restic  the real restic program, for interoperability tests (testutil.ResticBin)
#   fuse3   fusermount3, for the FUSE mount tests
#   containerd runc containernetworking-plugins iptables busybox-static
#           the test node's runtime, network and shell image (tests/node)
#   iproute2 procps ca-certificates
#           the node's netns and veth (ip), its leftover checks (pgrep),
#           the CA bundle that goes into cairn's image
pkg_installed() {
	local status
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	[ "$status" = "install ok installed" ]
}
missing=()
for pkg in make restic fuse3 containerd runc containernetworking-plugins iptables busybox-static iproute2 procps ca-certificates; do
	pkg_installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- MinIO (S3 backend tests) ------------------------------------------------
# Built once from the Go module proxy (~6 min cold; pinned so every machine tests the same server) into the cache that
# testutil.MinIOBin looks in; the tests start their own servers on 127.0.0.1.
cache_bin="${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin"
if [ ! -x "$cache_bin/minio" ] && ! command -v minio >/dev/null; then
	echo "setup: building minio into $cache_bin"
	mkdir -p "$cache_bin"
	(cd /tmp && GOFLAGS= GOBIN="$cache_bin" go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c)
fi

# --- Helm (the chart test renders deploy/chart) -------------------------------
# Built once from the Go module proxy (~22 min cold on a busy 2-core
# machine; pinned like minio, the version also in tests/testutil/helm.go)
# into the same cache, where the chart test finds it.
if [ ! -x "$cache_bin/helm" ] && ! command -v helm >/dev/null; then
	echo "setup: building helm into $cache_bin"
	mkdir -p "$cache_bin"
	(cd /tmp && GOFLAGS= GOBIN="$cache_bin" go install helm.sh/helm/v4/cmd/helm@v4.3.2)
fi

# --- restic 0.19.1 beside Debian's 0.14 ----------------------------------------
# Interop and forget tests compare with every restic they find: the old one
# from apt and a current one built from the Go module proxy (~80 s once).
echo "setup: restic $(bash tests/build-restic.sh 0.19.1)"

# --- Kubernetes control plane (etcd, kube-apiserver, controller-manager) -----
# Built once from the Go module proxy (~12 min cold, 3 GB RAM) into the user
# cache; tests/cluster starts it on 127.0.0.1 for the tests that need it.
echo "setup: k8s binaries in $(bash tests/cluster/build-binaries.sh)"

# --- Versions ----------------------------------------------------------------
echo "setup: $(go version)"
echo "setup: $(restic version)"
echo "setup: $(fusermount3 -V 2>&1 || true)"
echo "setup: minio $("$cache_bin/minio" --version 2>/dev/null | head -1 || minio --version | head -1)"
echo "setup: helm $("$cache_bin/helm" version --short 2>/dev/null || helm version --short)"
echo "setup: $(nproc) cores, $(awk '/^MemTotal:/ {printf "%.1f", $2/1048576}' /proc/meminfo) GiB RAM, uid $(id -u)"

