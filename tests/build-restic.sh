#!/usr/bin/env bash
# Builds restic VERSION (default 0.19.1) from the Go module proxy into the
# user cache and prints its path; a no-op when it is there. `go install`
# cannot be used: the proxy refuses restic's version list, which it reads.
set -euo pipefail
version=${1:-0.19.1}
out=${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-$version
if [ ! -x "$out" ]; then
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && go mod download -json "github.com/restic/restic@v$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	rmdir "$tmp"
	[ -n "$dir" ] && [ -d "$dir" ] || { echo "build-restic: cannot download restic $version" >&2; exit 1; }
	mkdir -p "$(dirname "$out")"
	(cd "$dir" && GOFLAGS=-mod=mod go build -o "$out.tmp" ./cmd/restic) >&2
	mv "$out.tmp" "$out"
fi
echo "$out"
