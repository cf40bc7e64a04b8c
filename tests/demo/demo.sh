#!/usr/bin/env bash
# The main job, end to end, on embedded defaults: a local repository and a
# local Kubernetes control plane (etcd + kube-apiserver + controller-manager
# on 127.0.0.1, built once from the Go module proxy, ~12 min the first time).
#
#   1. back up a directory, restore it, check it with cairn and with restic;
#   2. back up a namespace, delete it, restore it, see it back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

work=${DEMO_DIR:-$(mktemp -d /tmp/cairn-demo.XXXXXX)}
mkdir -p "$work"
export CAIRN_REPOSITORY=$work/repo CAIRN_PASSWORD=${CAIRN_PASSWORD:-demo-password}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "build cairn"
go build -o bin/cairn ./cmd/cairn
cairn=$PWD/bin/cairn

say "init a repository in $CAIRN_REPOSITORY"
$cairn init

say "back up a directory (this source tree), restore it, compare"
$cairn backup --tag demo "$PWD/repo" "$PWD/snapshot"
$cairn snapshots
$cairn restore latest --target "$work/restore" --verify
diff -r "$PWD/repo" "$work/restore$PWD/repo" && echo "restored tree is identical"
$cairn check --read-data
if command -v restic >/dev/null; then
	say "the real restic program reads cairn's repository"
	RESTIC_PASSWORD=$CAIRN_PASSWORD restic -r "$CAIRN_REPOSITORY" --no-cache check --read-data
fi

say "start a local Kubernetes control plane"
bindir=$(bash tests/cluster/build-binaries.sh)
kubectl="$bindir/kubectl"
go run ./tests/cluster/cmd/cluster up "$work/cluster"
trap 'go run ./tests/cluster/cmd/cluster down "$work/cluster" >/dev/null 2>&1 || true' EXIT
export KUBECONFIG=$work/cluster/admin.kubeconfig

say "create a demo application in namespace shop"
$kubectl create namespace shop
$kubectl -n shop create configmap settings --from-literal=currency=EUR --from-literal=theme=dark
$kubectl -n shop create secret generic db --from-literal=password=s3cret
$kubectl -n shop create deployment web --image=registry.example.com/shop/web:1.4 --replicas=2
$kubectl -n shop expose deployment web --port=80 --target-port=8080
$kubectl -n shop get all,configmaps,secrets

say "back up the namespace"
$cairn cluster backup nightly --include-namespaces shop
$cairn cluster backups
$cairn ls latest /resources/namespaces/shop

say "delete the namespace (disaster)"
$kubectl delete namespace shop --wait=true --timeout=90s

say "restore it, with the image registry remapped"
$cairn cluster restore nightly --image-repository-mappings registry.example.com/shop:mirror.local/shop
$kubectl -n shop get deployment web -o jsonpath='{.spec.template.spec.containers[0].image}{"\n"}'
$kubectl -n shop get configmap settings -o jsonpath='{.data}{"\n"}'

say "done: repository at $CAIRN_REPOSITORY (password $CAIRN_PASSWORD)"
