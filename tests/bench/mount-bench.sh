#!/usr/bin/env bash
# Benchmark browsing a repository through FUSE: `cairn mount` against
# `restic mount`, on the same repository (written by cairn; restic reads it),
# in the same run.
#
#   bash tests/bench/mount-bench.sh
#
# Dataset: one 256 MiB file of random bytes and 20,000 small files (2 KiB, 100
# per directory). For each tool, with the repository's files in the page cache
# and a fresh mount (so the kernel has nothing of the mount cached):
#   read   cat of the 256 MiB file through snapshots/latest/... to /dev/null
#   find   find over the 20,000 files, piped to wc -l (the count is checked)
# The file read through each mount is compared with the original (cmp, not
# timed). Each tool is measured BENCH_RUNS times, alternating, each time on a
# fresh mount; the table shows the medians: wall times, MiB/s and the ratios
# restic/cairn (>1: cairn faster). One line per measurement:
#   BENCH {"tool":"cairn","step":"read","wall_s":...}
#
# With BENCH_BACKEND=s3 the repository is also written to a MinIO that the
# script starts on 127.0.0.1, behind a latency proxy (BENCH_LATENCY each way,
# default 20ms: a 40 ms round trip), and the tools are cairn on the local
# repository, cairn on the remote one and restic on the remote one; the walk
# is `ls -R` of the backed-up directory instead of find. The ratios are then
# remote/local for cairn (the goal: within 2x) and restic/cairn remote.
#
# Environment:
#   BENCH_RUNS    measurements per tool (default 3)
#   BENCH_BACKEND local (default) or s3 (see above)
#   BENCH_LATENCY with s3: delay each way in front of MinIO (default 20ms)
#   BENCH_CAIRN   a cairn binary to measure instead of one built from here
#   BENCH_DIR     work directory (default /tmp/cairn-mount-bench); the dataset
#                 is kept there between runs, repositories and mounts are not
#   BENCH_RESTIC  restic binary. Default: restic 0.19.1 at
#                 ${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-0.19.1 (see
#                 bench.sh, which builds it), else restic from PATH.
# Needs root or a working fusermount3, and /dev/fuse.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BENCH_DIR=${BENCH_DIR:-/tmp/cairn-mount-bench}
RESTIC_CACHED=${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-0.19.1
PASSWORD=cairn-mount-bench
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_BACKEND=${BENCH_BACKEND:-local}
BENCH_LATENCY=${BENCH_LATENCY:-20ms}
SMALL_DIRS=200
SMALL_PER_DIR=100

while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(RESTIC|CAIRN)_' || true)
log() { echo "mount-bench: $*" >&2; }
die() { echo "mount-bench: error: $*" >&2; exit 1; }

[ -e /dev/fuse ] || die "/dev/fuse is missing"
command -v fusermount3 >/dev/null || die "fusermount3 is missing (apt-get install fuse3)"
if [ -n "${BENCH_RESTIC:-}" ]; then
	RESTIC=$(command -v "$BENCH_RESTIC") || die "BENCH_RESTIC=$BENCH_RESTIC: not found"
elif [ -x "$RESTIC_CACHED" ]; then
	RESTIC=$RESTIC_CACHED
else
	RESTIC=$(command -v restic) || die "no restic: run tests/bench/bench.sh once (it builds 0.19.1) or apt-get install restic"
	log "WARNING: restic 0.19.1 not found at $RESTIC_CACHED; using $RESTIC"
fi
log "restic: $RESTIC ($("$RESTIC" version))"

mkdir -p "$BENCH_DIR"
if [ -n "${BENCH_CAIRN:-}" ]; then
	CAIRN=$(command -v "$BENCH_CAIRN") || die "BENCH_CAIRN=$BENCH_CAIRN: not found"
else
	CAIRN=$BENCH_DIR/cairn
	go build -o "$CAIRN" ./cmd/cairn || die "cannot build cairn"
fi

DATA=$BENCH_DIR/data
if [ ! -f "$DATA/.complete" ]; then
	log "generating the dataset in $DATA"
	rm -rf "$DATA"
	mkdir -p "$DATA/small"
	head -c 256M /dev/urandom >"$DATA/big.bin"
	for ((d = 0; d < SMALL_DIRS; d++)); do
		dir=$(printf '%s/small/d%03d' "$DATA" "$d")
		mkdir "$dir"
		head -c $((SMALL_PER_DIR * 2048)) /dev/urandom | split -b 2048 -d -a 3 - "$dir/f"
	done
	touch "$DATA/.complete"
fi
WANT_FIND=$((1 + SMALL_DIRS + SMALL_DIRS * SMALL_PER_DIR))

REPO=$BENCH_DIR/repo
MNT=$BENCH_DIR/mnt
fusermount3 -u "$MNT" 2>/dev/null || true
rm -rf "$REPO" "$BENCH_DIR/cache-restic"
mkdir -p "$MNT"
export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
log "backing up the dataset with cairn"
"$CAIRN" -r "$REPO" init -q
"$CAIRN" -r "$REPO" backup -q "$DATA"

TOOLS="cairn restic"
WALK=find
PIDS_BG=
if [ "$BENCH_BACKEND" = s3 ]; then
	TOOLS="cairn cairn-s3 restic-s3"
	WALK=ls-R
	minio=${CAIRN_MINIO:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/minio}
	[ -x "$minio" ] || minio=$(command -v minio) || die "no minio binary: run tests/setup.sh"
	MINIO_DATA=$BENCH_DIR/minio-data
	rm -rf "$MINIO_DATA" && mkdir -p "$MINIO_DATA"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	MINIO_ROOT_USER=benchadmin MINIO_ROOT_PASSWORD=bench-secret-key MINIO_BROWSER=off \
		"$minio" server "$MINIO_DATA" --address "127.0.0.1:$port" --console-address 127.0.0.1:0 --quiet >"$BENCH_DIR/minio.log" 2>&1 &
	PIDS_BG+=" $!"
	for _ in $(seq 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$port/probe" || true)
		[ -n "$code" ] && [ "$code" != 000 ] && [ "$code" != 503 ] && break
		sleep 0.2
	done
	go build -o "$BENCH_DIR/latencyproxy" ./tests/bench/latencyproxy
	"$BENCH_DIR/latencyproxy" -target "127.0.0.1:$port" -delay "$BENCH_LATENCY" >"$BENCH_DIR/proxy.out" 2>&1 &
	PIDS_BG+=" $!"
	addr=
	for _ in $(seq 100); do
		addr=$(sed -n 's/^listening on //p' "$BENCH_DIR/proxy.out")
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || die "latency proxy did not start: $(cat "$BENCH_DIR/proxy.out")"
	export AWS_ACCESS_KEY_ID=benchadmin AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_DEFAULT_REGION=us-east-1
	S3REPO=s3:http://$addr/mount-bench
	log "backing up the dataset with cairn into MinIO behind $BENCH_LATENCY each way ($addr)"
	"$CAIRN" -r "$S3REPO" init -q
	"$CAIRN" -r "$S3REPO" backup -q "$DATA"
fi

sync
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A WALL

PID=
cleanup() {
	if [ -n "$PID" ]; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	[ -z "$PIDS_BG" ] || kill $PIDS_BG 2>/dev/null || true
}
trap cleanup EXIT

for ((run = 1; run <= BENCH_RUNS; run++)); do
for tool in $TOOLS; do
	# Repository files in the page cache: both tools read them from memory.
	cat "$REPO"/data/*/* "$REPO"/index/* >/dev/null
	[ "$BENCH_BACKEND" != s3 ] || find "$MINIO_DATA" -type f -exec cat {} + >/dev/null
	case $tool in
	cairn) "$CAIRN" -r "$REPO" mount "$MNT" >"$BENCH_DIR/mount-$tool.log" 2>&1 & ;;
	restic) "$RESTIC" -r "$REPO" --cache-dir "$BENCH_DIR/cache-restic" mount "$MNT" >"$BENCH_DIR/mount-$tool.log" 2>&1 & ;;
	cairn-s3) "$CAIRN" -r "$S3REPO" mount "$MNT" >"$BENCH_DIR/mount-$tool.log" 2>&1 & ;;
	restic-s3) "$RESTIC" -r "$S3REPO" --cache-dir "$BENCH_DIR/cache-restic-s3" mount "$MNT" >"$BENCH_DIR/mount-$tool.log" 2>&1 & ;;
	esac
	PID=$!
	for ((i = 0; i < 600; i++)); do
		[ -e "$MNT/snapshots/latest" ] && break
		kill -0 "$PID" 2>/dev/null || die "$tool mount exited: $(cat "$BENCH_DIR/mount-$tool.log")"
		sleep 0.1
	done
	[ -e "$MNT/snapshots/latest" ] || die "$tool mount did not come up"
	base=$MNT/snapshots/latest$DATA

	t0=$(now)
	cat "$base/big.bin" >/dev/null
	t1=$(now)
	read_s=$(elapsed "$t0" "$t1")

	t0=$(now)
	if [ "$WALK" = find ]; then
		n=$(find "$base/small" | wc -l)
	else
		# ls -R prints a header and a blank line per directory besides the names.
		n=$(ls -R "$base/small" | grep -c '^f')
	fi
	t1=$(now)
	find_s=$(elapsed "$t0" "$t1")
	if [ "$WALK" = find ]; then
		[ "$n" -eq "$WANT_FIND" ] || die "$tool: find listed $n entries, want $WANT_FIND"
	else
		[ "$n" -eq $((SMALL_DIRS * SMALL_PER_DIR)) ] || die "$tool: ls -R listed $n files, want $((SMALL_DIRS * SMALL_PER_DIR))"
	fi

	cmp "$base/big.bin" "$DATA/big.bin" || die "$tool: big.bin read through the mount differs"

	fusermount3 -u "$MNT"
	wait "$PID" || log "$tool mount exited with $? after fusermount3 -u"
	PID=
	WALL[$tool,read]+=" $read_s"
	WALL[$tool,find]+=" $find_s"
	echo "BENCH {\"tool\":\"$tool\",\"run\":$run,\"step\":\"read\",\"wall_s\":$read_s}"
	echo "BENCH {\"tool\":\"$tool\",\"run\":$run,\"step\":\"find\",\"wall_s\":$find_s}"
done
done
for tool in $TOOLS; do
	for step in read find; do
		WALL[$tool,$step]=$(echo "${WALL[$tool,$step]}" | median)
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
if [ "$BENCH_BACKEND" = s3 ]; then
	printf '\nmedians of %d runs; remote: MinIO on 127.0.0.1 behind %s each way\n' "$BENCH_RUNS" "$BENCH_LATENCY"
	printf '%-8s %12s %12s %12s %16s %18s\n' step cairn-local cairn-s3 restic-s3 "cairn s3/local" "restic/cairn (s3)"
	for step in read find; do
		l=${WALL[cairn,$step]} c=${WALL[cairn-s3,$step]} r=${WALL[restic-s3,$step]}
		name=$step
		[ "$step" = find ] && name=ls-R
		printf '%-8s %11ss %11ss %11ss %15sx %17sx\n' "$name" "$l" "$c" "$r" "$(ratio "$c" "$l")" "$(ratio "$r" "$c")"
	done
	awk -v l="${WALL[cairn,read]}" -v c="${WALL[cairn-s3,read]}" -v r="${WALL[restic-s3,read]}" \
		'BEGIN { printf "\nsequential read of 256 MiB: cairn %.0f MiB/s local, %.0f MiB/s remote; restic %.0f MiB/s remote\n", 256 / l, 256 / c, 256 / r }'
	echo "ls -R over $SMALL_DIRS directories, $((SMALL_DIRS * SMALL_PER_DIR)) files"
else
	printf '\nmedians of %d runs\n%-8s %12s %12s %16s\n' "$BENCH_RUNS" step cairn restic "restic/cairn"
	for step in read find; do
		c=${WALL[cairn,$step]} r=${WALL[restic,$step]}
		printf '%-8s %11ss %11ss %15sx\n' "$step" "$c" "$r" "$(ratio "$r" "$c")"
	done
	awk -v c="${WALL[cairn,read]}" -v r="${WALL[restic,read]}" \
		'BEGIN { printf "\nsequential read of 256 MiB: cairn %.0f MiB/s, restic %.0f MiB/s\n", 256 / c, 256 / r }'
	echo "find over $WANT_FIND entries (20,000 files)"
fi
echo "load average (1, 5, 15 min): $LOAD_BEFORE before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after (the machine may be shared)"
