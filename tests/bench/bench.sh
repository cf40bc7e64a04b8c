#!/usr/bin/env bash
# Benchmark cairn against restic on the same dataset, in the same run.
#
#   bash tests/bench/bench.sh          (or: make bench)
#
# Two suites (BENCH_SUITE):
#
# rows (the default): the performance table of issue 16, every row in one run.
#   Two datasets: "big" (about 1.5 GiB in 20,000 files: 4 x 128 MiB random,
#   a 256 MiB duplicate, 100 MiB of logs, 20,000 files of 1-64 KiB) and
#   "small" (200,000 files of 1-2 KiB, about 0.3 GiB, 100 a directory); each
#   on a local repository and on S3 (MinIO on 127.0.0.1 behind the latency
#   proxy, 20 ms each way = 40 ms round trip). Per set and tool (cairn and
#   restic, step by step in turn): init, backup-first, backup-unchanged,
#   restore into a fresh directory; plus `cp -a` of the same tree as the
#   restore reference. Prints one table: wall time and peak RSS per tool,
#   restic/cairn wall ratio (>1: cairn faster), cairn/restic RSS ratio, and
#   for restore cp-a wall and cairn/cp-a wall ratio (<=1: cairn as fast).
#   About 15-25 min on 2 shared cores (datasets are generated once and
#   cached); a set's restored trees are kept until the set is done (about
#   15 GiB for a big set at scale 1).
#   Knobs: BENCH_SETS (default "local/big local/small s3/big s3/small"),
#   BENCH_FIRST_REPEAT (default 3: runs of backup-first, each into a new
#   repository, the median is shown; all but the last are removed again),
#   BENCH_UNCHANGED_REPEAT (default 3: runs of backup-unchanged, the median
#   is shown), BENCH_REPEAT (default 3: runs of restore and cp -a, the
#   median is shown), BENCH_LATENCY (default 20ms), BENCH_SCALE (multiplies
#   both datasets' size and file count: 0.1 for a quick run of about 2 min),
#   BENCH_TOOLS, BENCH_RESTIC, BENCH_VERIFY, BENCH_DIR as below.
#
# single: the older one-dataset run described below; chosen by
#   BENCH_SUITE=single, and also when BENCH_BACKEND, BENCH_DATASET or
#   BENCH_MUTATE is set (they only mean something there).
#
# Steps of the single suite, for each tool, on a fresh local repository:
#   init, backup-first, backup-unchanged, (dataset mutated once) backup-changed,
#   restore (into a fresh directory, deleted afterwards).
# The dataset is identical for both tools at each step: both run their first and
# unchanged backups, then the working copy is mutated once, then both run their
# changed backup and restore.
#
# Measured per step: wall time, user+sys CPU time and peak RSS (GNU time), and
# the repository size (du -sb). Prints a table with the ratios restic/cairn for
# time (>1: cairn faster) and cairn/restic for RSS (<1: cairn smaller), and one
# machine-readable line per step:
#   BENCH {"tool":"cairn","step":"backup-first","wall_s":..., ...}
# (also appended to $BENCH_DIR/results.jsonl).
#
# Environment:
#   BENCH_DIR     work directory (default /tmp/cairn-bench): dataset cache,
#                 repositories, caches, logs, results
#   BENCH_SCALE   dataset scale (default 1 = about 2.0 GiB; 0.1 = about 200 MiB)
#   BENCH_MUTATE  percentage of the data changed before backup-changed (default 5)
#   BENCH_TOOLS   tools to run, in this order (default "cairn restic")
#   BENCH_RESTIC  restic binary to use. Default: restic 0.19.1 cached at
#                 ${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-0.19.1, built
#                 from the Go module proxy when missing (about 80 s); if that
#                 fails, restic from PATH (Debian's 0.14).
#   BENCH_VERIFY  1: compare each restored tree with the dataset (diff -r)
#   BENCH_BACKEND local (default) or s3: both tools use a MinIO server that the
#                 script starts on 127.0.0.1 with a fresh data directory (the
#                 binary from tests/setup.sh's cache or $CAIRN_MINIO), and the
#                 remote steps below instead of the local ones
#   BENCH_LATENCY with s3: delay added to each direction between the tools and
#                 MinIO by a proxy on 127.0.0.1 (tests/bench/latencyproxy),
#                 e.g. 20ms = a 40 ms round trip to a nearby cloud region;
#                 bandwidth is not limited (default 0: no proxy)
#   BENCH_DATASET standard (default with local: the BENCH_SCALE dataset) or
#                 trees (default with s3: about 182 MiB in 10,013 files and
#                 2,005 directories, 5 small files a directory; BENCH_SCALE is
#                 not used)
#
# With BENCH_BACKEND=s3 the steps are those of a remote repository, per tool:
#   init, backup-first, backup-unchanged (warm cache), backup-unchanged-cold
#   (a fresh empty cache directory), backup-unchanged-nocache (--no-cache),
#   snapshots, find (a pattern over all snapshots), find-nocache, ls
#   (everything in latest), restore, check.
#
# restic runs with its defaults (cache on, warm after the first backup), with
# its cache in $BENCH_DIR/cache-restic; cairn runs with XDG_CACHE_HOME set to
# $BENCH_DIR/cache-cairn (with s3 also --cache-dir $BENCH_DIR/cache-cairn).
# Passwords: CAIRN_PASSWORD / RESTIC_PASSWORD.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

if [ -z "${BENCH_SUITE:-}" ]; then
	BENCH_SUITE=rows
	if [ -n "${BENCH_BACKEND:-}${BENCH_DATASET:-}${BENCH_MUTATE:-}" ]; then BENCH_SUITE=single; fi
fi
case $BENCH_SUITE in rows | single) ;; *) echo "bench: error: BENCH_SUITE must be rows or single, not '$BENCH_SUITE'" >&2; exit 1 ;; esac
BENCH_DIR=${BENCH_DIR:-/tmp/cairn-bench}
BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_SETS=${BENCH_SETS:-local/big local/small s3/big s3/small}
BENCH_REPEAT=${BENCH_REPEAT:-3}
BENCH_FIRST_REPEAT=${BENCH_FIRST_REPEAT:-3}
BENCH_UNCHANGED_REPEAT=${BENCH_UNCHANGED_REPEAT:-3}
BENCH_MUTATE=${BENCH_MUTATE:-5}
BENCH_TOOLS=${BENCH_TOOLS:-cairn restic}
BENCH_VERIFY=${BENCH_VERIFY:-0}
BENCH_BACKEND=${BENCH_BACKEND:-local}
if [ "$BENCH_SUITE" = rows ]; then BENCH_LATENCY=${BENCH_LATENCY:-20ms}; else BENCH_LATENCY=${BENCH_LATENCY:-0}; fi
case $BENCH_BACKEND in
local) BENCH_DATASET=${BENCH_DATASET:-standard} ;;
s3) BENCH_DATASET=${BENCH_DATASET:-trees} ;;
*) echo "bench: error: BENCH_BACKEND must be local or s3, not '$BENCH_BACKEND'" >&2; exit 1 ;;
esac
RESTIC_VERSION=0.19.1
RESTIC_CACHED=${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-$RESTIC_VERSION
SEED=1
PASSWORD=cairn-bench-password

# Nothing from the caller's restic settings may leak into the runs.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^RESTIC_' || true)

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

for tool in $BENCH_TOOLS; do
	case $tool in cairn | restic) ;; *) die "unknown tool '$tool' in BENCH_TOOLS (cairn, restic)" ;; esac
done
awk -v s="$BENCH_SCALE" 'BEGIN { exit !(s + 0 > 0) }' || die "BENCH_SCALE must be a positive number, not '$BENCH_SCALE'"
case $BENCH_DATASET in standard | trees) ;; *) die "BENCH_DATASET must be standard or trees, not '$BENCH_DATASET'" ;; esac
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer, not '$BENCH_REPEAT'"
[[ $BENCH_FIRST_REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_FIRST_REPEAT must be a positive integer, not '$BENCH_FIRST_REPEAT'"
[[ $BENCH_UNCHANGED_REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_UNCHANGED_REPEAT must be a positive integer, not '$BENCH_UNCHANGED_REPEAT'"
for set in $BENCH_SETS; do
	case $set in local/big | local/small | s3/big | s3/small) ;; *) die "unknown set '$set' in BENCH_SETS (local/big, local/small, s3/big, s3/small)" ;; esac
done
if [ "$BENCH_SUITE" = single ] && [ "$BENCH_LATENCY" != 0 ] && [ "$BENCH_BACKEND" != s3 ]; then
	die "BENCH_LATENCY=$BENCH_LATENCY needs BENCH_BACKEND=s3 (the delay is added in front of MinIO)"
fi

mkdir -p "$BENCH_DIR"/bin "$BENCH_DIR"/logs
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

# --- GNU time ----------------------------------------------------------------
TIME=/usr/bin/time
if ! [ -x "$TIME" ] || ! "$TIME" -f '%e' true >/dev/null 2>&1; then
	log "installing GNU time (Debian package 'time')"
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q time >/dev/null 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q time; } ||
		die "cannot install GNU time (apt-get install time)"
fi

# --- cairn -------------------------------------------------------------------
CAIRN=$ROOT/bin/cairn
if [[ " $BENCH_TOOLS " == *" cairn "* ]]; then
	log "building cairn (go build -o bin/cairn ./cmd/cairn)"
	# The commit built, with + when the work tree differs from it.
	CAIRN_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
	[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || CAIRN_REV+=+
	if ! go build -o "$CAIRN" ./cmd/cairn; then
		die "cannot build cairn from ./cmd/cairn (errors above); the benchmark needs a working cairn binary. To benchmark restic alone: BENCH_TOOLS=restic"
	fi
fi

# --- restic ------------------------------------------------------------------
build_restic() { # build restic $RESTIC_VERSION into $1 (the cache path)
	[ "$1" = "$(bash "$ROOT/tests/build-restic.sh" "$RESTIC_VERSION")" ]
}
RESTIC=
if [[ " $BENCH_TOOLS " == *" restic "* ]]; then
	if [ -n "${BENCH_RESTIC:-}" ]; then
		RESTIC=$(command -v "$BENCH_RESTIC") || die "BENCH_RESTIC=$BENCH_RESTIC: not found"
	elif [ -x "$RESTIC_CACHED" ]; then
		RESTIC=$RESTIC_CACHED
	else
		log "building restic $RESTIC_VERSION into $RESTIC_CACHED (about 80 s on a cold module cache)"
		if build_restic "$RESTIC_CACHED"; then
			RESTIC=$RESTIC_CACHED
		else
			RESTIC=$(command -v restic) || die "could not build restic $RESTIC_VERSION and no restic in PATH (apt-get install restic)"
			log "WARNING: could not build restic $RESTIC_VERSION; using $RESTIC ($("$RESTIC" version | awk '{print $2}'))"
		fi
	fi
	log "restic: $RESTIC ($("$RESTIC" version))"
fi

# --- dataset -----------------------------------------------------------------
GENDATA=$BENCH_DIR/bin/gendata
go build -o "$GENDATA" ./tests/bench/gendata
if [ "$BENCH_SUITE" = single ]; then
	if [ "$BENCH_DATASET" = trees ]; then
		BASE=$BENCH_DIR/base-trees-seed$SEED
		GENFLAGS=(-scale 0.1 -small 10000 -per-dir 5 -small-max 8192)
	else
		BASE=$BENCH_DIR/base-scale$BENCH_SCALE-seed$SEED
		GENFLAGS=(-scale "$BENCH_SCALE")
	fi
	DATA=$BENCH_DIR/data
	if ! [ -f "$BASE.done" ]; then
		log "generating the dataset ($BENCH_DATASET: ${GENFLAGS[*]}) into $BASE"
		rm -rf "$BASE"
		"$GENDATA" "${GENFLAGS[@]}" -seed "$SEED" "$BASE" >&2
		touch "$BASE.done"
	fi
	log "copying the dataset to $DATA"
	rm -rf "$DATA"
	cp -a "$BASE" "$DATA"
	sync
	DATA_BYTES=$(du -sb "$DATA" | cut -f1)
	DATA_FILES=$(find "$DATA" -type f | wc -l)
	DATA_DIRS=$(find "$DATA" -type d | wc -l)
	log "dataset: $DATA_FILES files, $DATA_BYTES bytes ($(awk -v b="$DATA_BYTES" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"
fi

# Timings are only comparable on an otherwise idle machine.
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	log "WARNING: load average is $load on $(nproc) cores: other work will distort the timings"
fi

RESULTS=$BENCH_DIR/results.jsonl
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
declare -A WALL CPU RSS SIZE LOC DIR

# Repository locations: a local directory each, or a bucket each on MinIO
# (sizes are then read from MinIO's data directory).
start_minio() {
	local bin=${CAIRN_MINIO:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/minio}
	[ -x "$bin" ] || bin=$(command -v minio) || die "no minio binary: run tests/setup.sh"
	MINIO_DATA=$BENCH_DIR/minio-data
	rm -rf "$MINIO_DATA" && mkdir -p "$MINIO_DATA"
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	MINIO_ROOT_USER=benchadmin MINIO_ROOT_PASSWORD=bench-secret-key MINIO_BROWSER=off \
		"$bin" server "$MINIO_DATA" --address "127.0.0.1:$port" --console-address 127.0.0.1:0 --quiet >"$BENCH_DIR/logs/minio.log" 2>&1 &
	MINIO_PID=$!
	trap 'kill $MINIO_PID ${PROXY_PID:-} 2>/dev/null || true' EXIT
	for _ in $(seq 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$port/probe" || true)
		[ -n "$code" ] && [ "$code" != 000 ] && [ "$code" != 503 ] && break
		sleep 0.2
	done
	export AWS_ACCESS_KEY_ID=benchadmin AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_DEFAULT_REGION=us-east-1
	MINIO_URL="s3:http://127.0.0.1:$port"
	log "minio on 127.0.0.1:$port"
	[ "$BENCH_LATENCY" = 0 ] && return
	go build -o "$BENCH_DIR/bin/latencyproxy" ./tests/bench/latencyproxy
	"$BENCH_DIR/bin/latencyproxy" -target "127.0.0.1:$port" -delay "$BENCH_LATENCY" >"$BENCH_DIR/logs/proxy.out" 2>&1 &
	PROXY_PID=$!
	local addr=
	for _ in $(seq 100); do
		addr=$(sed -n 's/^listening on //p' "$BENCH_DIR/logs/proxy.out")
		[ -n "$addr" ] && break
		kill -0 "$PROXY_PID" 2>/dev/null || die "latency proxy exited: $(cat "$BENCH_DIR/logs/proxy.out")"
		sleep 0.1
	done
	[ -n "$addr" ] || die "latency proxy did not start"
	MINIO_URL="s3:http://$addr"
	log "latency proxy on $addr: $BENCH_LATENCY each way in front of minio"
}

# tool_cmd TOOL: sets CMD to the command line that runs TOOL on its repository
# (env execs the tool, so GNU time measures the tool itself).
# With COLD set, the tool gets a fresh empty cache directory instead of its own;
# with NOCACHE set, it runs with --no-cache.
tool_cmd() {
	local cache=$BENCH_DIR/cache-$1
	if [ -n "${COLD:-}" ]; then
		cache=$BENCH_DIR/cache-$1-cold
		rm -rf "$cache"
	fi
	local cacheflags=(--cache-dir "$cache")
	if [ -n "${NOCACHE:-}" ]; then cacheflags=(--no-cache); fi
	case $1 in
	cairn)
		CMD=(env CAIRN_PASSWORD="$PASSWORD" XDG_CACHE_HOME="$cache" "$CAIRN" -r "${LOC[cairn]}")
		if [ "$BENCH_BACKEND" = s3 ]; then CMD+=("${cacheflags[@]}"); fi
		;;
	restic) CMD=(env RESTIC_PASSWORD="$PASSWORD"
		"$RESTIC" -r "${LOC[restic]}" "${cacheflags[@]}") ;;
	esac
}

# step TOOL STEP ARGS... : runs one measured step and records its numbers.
step() {
	local tool=$1 name=$2
	shift 2
	local logf=$BENCH_DIR/logs/$tool-${name//\//-}.log tf=$BENCH_DIR/logs/$tool-${name//\//-}.time
	log "$tool $name"
	local CMD
	tool_cmd "$tool"
	if ! "$TIME" -f '%e %U %S %M' -o "$tf" "${CMD[@]}" "$@" >"$logf" 2>&1 </dev/null; then
		echo "---- $logf (last 30 lines) ----" >&2
		tail -n 30 "$logf" >&2
		die "$tool $name failed: $tool $*"
	fi
	local wall user sys rss size
	read -r wall user sys rss < <(tail -n 1 "$tf")
	size=$(du -sb "${DIR[$tool]}" 2>/dev/null | cut -f1)
	size=${size:-0}
	WALL[$tool,$name]=$wall
	CPU[$tool,$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
	RSS[$tool,$name]=$rss
	SIZE[$tool,$name]=$size
	local line
	line=$(printf '{"run":"%s","tool":"%s","step":"%s","wall_s":%s,"user_s":%s,"sys_s":%s,"cpu_s":%s,"max_rss_kb":%s,"repo_bytes":%s,"scale":%s,"data_bytes":%s}' \
		"$RUN_ID" "$tool" "$name" "$wall" "$user" "$sys" "${CPU[$tool,$name]}" "$rss" "$size" "$BENCH_SCALE" "$DATA_BYTES")
	echo "BENCH $line"
	echo "$line" >>"$RESULTS"
}

# restore_step TOOL: restores latest into a fresh directory, checks its size
# (and with BENCH_VERIFY its contents), then deletes it.
restore_step() {
	local tool=$1 name=${2:-restore} dst=${3:-$BENCH_DIR/restore-$1}
	rm -rf "$dst"
	sync
	step "$tool" "$name" restore latest --target "$dst"
	# restic-like tools restore the backed-up absolute path below the target.
	local got=$dst$DATA
	[ -d "$got" ] || got=$dst
	local restored
	restored=$(du -sb "$got" | cut -f1)
	log "$tool restored $restored bytes (dataset: $DATA_BYTES)"
	if [ "$BENCH_VERIFY" = 1 ]; then
		diff -r --no-dereference "$DATA" "$got" >/dev/null || die "$tool: restored tree differs from the dataset ($got)"
		log "$tool restore verified"
	fi
	[ -n "${3:-}" ] || rm -rf "$dst"
}

# --- the rows suite -------------------------------------------------------------
# rows_dataset NAME: generates (once, cached) and selects the dataset NAME.
rows_dataset() {
	local flags
	case $1 in
	big) flags=(-scale "$BENCH_SCALE" -n 4) ;;
	small) flags=(-small-only -small "$(awk -v s="$BENCH_SCALE" 'BEGIN { printf "%d", 200000 * s }')" -small-max 2048) ;;
	esac
	DATA=$BENCH_DIR/data-$1-scale$BENCH_SCALE-seed$SEED
	if ! [ -f "$DATA.done" ]; then
		log "generating the $1 dataset (${flags[*]}) into $DATA"
		rm -rf "$DATA"
		"$GENDATA" "${flags[@]}" -seed "$SEED" "$DATA" >&2
		sync
		touch "$DATA.done"
	fi
	DATA_BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
	DATA_FILES=$(find "$DATA" -type f | wc -l)
	DATA_DIRS=$(find "$DATA" -type d | wc -l)
	DESC[$1]="$DATA_FILES files in $DATA_DIRS directories, $(mib "$DATA_BYTES") MiB"
	log "$1 dataset: ${DESC[$1]}"
}

# median_of NAME TOOLS...: WALL and RSS of NAME become the medians of the
# runs NAME#1..NAME#BENCH_REPEAT (the upper middle one for an even count).
median_of() {
	local name=$1 tool i
	shift
	med() { sort -g | awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }'; }
	for tool in "$@"; do
		WALL[$tool,$name]=$(for i in $(seq "$BENCH_REPEAT"); do echo "${WALL[$tool,$name#$i]}"; done | med)
		RSS[$tool,$name]=$(for i in $(seq "$BENCH_REPEAT"); do echo "${RSS[$tool,$name#$i]}"; done | med)
		CPU[$tool,$name]=$(for i in $(seq "$BENCH_REPEAT"); do echo "${CPU[$tool,$name#$i]}"; done | med)
	done
}

# cp_step NAME DST: `cp -a` of the dataset into DST (fresh), measured like a
# tool's step (recorded as tool "cp-a").
cp_step() {
	local name=$1 dst=$2 tf=$BENCH_DIR/logs/cp-a-${1//\//-}.time
	mkdir -p "$dst"
	sync
	log "cp -a $name"
	"$TIME" -f '%e %U %S %M' -o "$tf" cp -a "$DATA" "$dst/" || die "cp -a $DATA $dst/ failed"
	local wall user sys rss
	read -r wall user sys rss < <(tail -n 1 "$tf")
	WALL[cp-a,$name]=$wall RSS[cp-a,$name]=$rss
	CPU[cp-a,$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
}

run_rows() {
	local set backend ds tool i
	local -A DESC
	ROWS=()
	RESTORED=$BENCH_DIR/restored
	log "removing restored trees of an earlier run"
	rm -rf "$RESTORED" "$BENCH_DIR/restore-cp"
	mkdir -p "$RESTORED"
	# A set's restores and cp -a stay on disk until the set is done (see
	# below): about 1.5 GiB each for the big dataset at scale 1, plus the
	# warm-up copy.
	local need avail
	need=$(awk -v s="$BENCH_SCALE" -v r="$BENCH_REPEAT" 'BEGIN { printf "%d", (1 + 3 * r) * 1.5 * s * 1048576 + 1048576 }')
	avail=$(df -Pk "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
	[ "$avail" -gt "$need" ] || die "about $((need / 1048576)) GiB free needed in $BENCH_DIR for the restored trees, $((avail / 1048576)) GiB there: set BENCH_DIR elsewhere, or a smaller BENCH_REPEAT"
	for set in $BENCH_SETS; do
		backend=${set%/*} ds=${set#*/}
		BENCH_BACKEND=$backend
		rows_dataset "$ds"
		if [ "$backend" = s3 ] && [ -z "${MINIO_URL:-}" ]; then start_minio; fi
		for tool in $BENCH_TOOLS; do
			if [ "$backend" = s3 ]; then
				LOC[$tool]=$MINIO_URL/bench-$ds-$tool DIR[$tool]=$MINIO_DATA/bench-$ds-$tool
			else
				LOC[$tool]=$BENCH_DIR/repo-$tool DIR[$tool]=$BENCH_DIR/repo-$tool
			fi
			rm -rf "$BENCH_DIR/repo-$tool" "$BENCH_DIR/cache-$tool" "$BENCH_DIR/restore-$tool"
		done
		# Tools take turns step by step, so that a noisy minute hits both.
		for tool in $BENCH_TOOLS; do step "$tool" "$set/init" init; done
		# The dataset's pages come back into the cache first (untimed): the
		# restores of the set before evicted them, and the first tool would
		# read from disk what the second finds in memory.
		log "reading $DATA into the page cache (not measured)"
		find "$DATA" -type f -print0 | xargs -0 cat >/dev/null
		# First backups, repeated into scratch repositories that are removed
		# again; the last repetition goes into the repository the later
		# steps use.
		for i in $(seq "$BENCH_FIRST_REPEAT"); do
			for tool in $BENCH_TOOLS; do
				if [ "$i" -lt "$BENCH_FIRST_REPEAT" ]; then
					local loc=${LOC[$tool]} dir=${DIR[$tool]}
					LOC[$tool]=$loc-first$i DIR[$tool]=$dir-first$i
					step "$tool" "$set/init-first$i" init
					sync
					step "$tool" "$set/backup-first#$i" backup "$DATA"
					rm -rf "${DIR[$tool]}"
					LOC[$tool]=$loc DIR[$tool]=$dir
				else
					sync
					step "$tool" "$set/backup-first#$i" backup "$DATA"
				fi
			done
		done
		for i in $(seq "$BENCH_UNCHANGED_REPEAT"); do
			for tool in $BENCH_TOOLS; do step "$tool" "$set/backup-unchanged#$i" backup "$DATA"; done
		done
		# Restored trees stay until the set is done, and an untimed cp -a
		# goes first: on ext4 the first few hundred thousand files created
		# after a large deletion cost several times more kernel time (without
		# a journal, its inode allocator skips inodes freed in the last half
		# minute or so, reading each one's block: recently_deleted), which
		# would fall on whichever restore came first (seen: the same restore
		# 32 s first, 7 s next).
		log "cp -a $set (warm-up, not measured)"
		cp -a "$DATA" "$RESTORED/${set//\//-}-warmup"
		for i in $(seq "$BENCH_REPEAT"); do
			for tool in $BENCH_TOOLS; do
				restore_step "$tool" "$set/restore#$i" "$RESTORED/${set//\//-}-$tool-$i"
			done
			cp_step "$set/restore#$i" "$RESTORED/${set//\//-}-cp-$i"
		done
		# shellcheck disable=SC2086
		BENCH_REPEAT=$BENCH_FIRST_REPEAT median_of "$set/backup-first" $BENCH_TOOLS
		# shellcheck disable=SC2086
		BENCH_REPEAT=$BENCH_UNCHANGED_REPEAT median_of "$set/backup-unchanged" $BENCH_TOOLS
		# shellcheck disable=SC2086
		median_of "$set/restore" $BENCH_TOOLS cp-a
		ROWS+=("$set/backup-first" "$set/backup-unchanged" "$set/restore")
		# Local repositories go (MinIO's buckets stay: their files are its own),
		# and so do the set's restored trees: the next set's files are only
		# created minutes later (after its backups), by its untimed warm-up.
		for tool in $BENCH_TOOLS; do rm -rf "$BENCH_DIR/repo-$tool" "$BENCH_DIR/cache-$tool"; done
		rm -rf "${RESTORED:?}"/"${set//\//-}"-*
	done

	read -r -a TOOLS <<<"$BENCH_TOOLS"
	echo
	echo "cairn benchmark $RUN_ID (suite rows, scale $BENCH_SCALE, median of $BENCH_FIRST_REPEAT for first backups, $BENCH_UNCHANGED_REPEAT for unchanged ones, $BENCH_REPEAT for restores), $(nproc) cores, load before: $load"
	for ds in big small; do [ -n "${DESC[$ds]:-}" ] && echo "  $ds: ${DESC[$ds]}"; done
	echo "  s3: MinIO on 127.0.0.1 behind the latency proxy, $BENCH_LATENCY each way"
	for tool in "${TOOLS[@]}"; do
		case $tool in
		cairn) echo "  cairn:  $CAIRN ($CAIRN_REV)" ;;
		restic) echo "  restic: $RESTIC ($("$RESTIC" version))" ;;
		esac
	done
	local header row c r
	header=$(printf '%-28s' case)
	for tool in "${TOOLS[@]}"; do header+=$(printf ' | %-6s %7s %7s' "$tool" wall_s rss_MiB); done
	header+=$(printf ' | %8s %8s | %7s %8s' 'wall r/c' 'rss c/r' 'cp-a_s' 'c/cp-a')
	echo "$header"
	echo "${header//?/-}"
	for s in "${ROWS[@]}"; do
		row=$(printf '%-28s' "$s")
		for tool in "${TOOLS[@]}"; do
			row+=$(printf ' | %-6s %7s %7s' "" "${WALL[$tool,$s]}" "$(awk -v k="${RSS[$tool,$s]}" 'BEGIN { printf "%.0f", k / 1024 }')")
		done
		c=${WALL[cairn,$s]:-} r=${WALL[restic,$s]:-}
		row+=$(printf ' | %8s %8s' "$(ratio "$r" "$c")" "$(ratio "${RSS[cairn,$s]:-}" "${RSS[restic,$s]:-}")")
		if [[ $s == */restore ]]; then
			row+=$(printf ' | %7s %8s' "${WALL[cp-a,$s]}" "$(ratio "$c" "${WALL[cp-a,$s]}")")
		else
			row+=$(printf ' | %7s %8s' "" "")
		fi
		echo "$row"
	done
	echo "wall r/c: restic/cairn wall time (>1: cairn faster); rss c/r: cairn/restic peak RSS (<=1: cairn no bigger);"
	echo "c/cp-a: cairn restore / cp -a wall time (<=1: cairn no slower)."
	echo "logs: $BENCH_DIR/logs; results: $RESULTS"
	log "removing the restored trees"
	rm -rf "$RESTORED"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

if [ "$BENCH_SUITE" = rows ]; then
	run_rows
	exit 0
fi

[ "$BENCH_BACKEND" = s3 ] && start_minio
for tool in $BENCH_TOOLS; do
	if [ "$BENCH_BACKEND" = s3 ]; then
		LOC[$tool]=$MINIO_URL/bench-$tool DIR[$tool]=$MINIO_DATA/bench-$tool
	else
		LOC[$tool]=$BENCH_DIR/repo-$tool DIR[$tool]=$BENCH_DIR/repo-$tool
	fi
	rm -rf "$BENCH_DIR/repo-$tool" "$BENCH_DIR/cache-$tool" "$BENCH_DIR/cache-$tool-cold" "$BENCH_DIR/restore-$tool"
done

if [ "$BENCH_BACKEND" = s3 ]; then
	# --- a remote repository: what a node agent and its operator run ----------
	STEPS="init backup-first backup-unchanged backup-unchanged-cold backup-unchanged-nocache snapshots find find-nocache ls restore check"
	for tool in $BENCH_TOOLS; do
		step "$tool" init init
		step "$tool" backup-first backup "$DATA"
		step "$tool" backup-unchanged backup "$DATA"
		COLD=1 step "$tool" backup-unchanged-cold backup "$DATA"
		rm -rf "$BENCH_DIR/cache-$tool-cold"
		NOCACHE=1 step "$tool" backup-unchanged-nocache backup "$DATA"
		step "$tool" snapshots snapshots
		step "$tool" find find 'f0004?.bin'
		NOCACHE=1 step "$tool" find-nocache find 'f0004?.bin'
		step "$tool" ls ls latest
		restore_step "$tool"
		step "$tool" check check
	done
else
	STEPS="init backup-first backup-unchanged backup-changed restore"
	# --- phase 1: init, first and unchanged backups ----------------------------
	for tool in $BENCH_TOOLS; do
		step "$tool" init init
		step "$tool" backup-first backup "$DATA"
		step "$tool" backup-unchanged backup "$DATA"
	done

	# --- mutate once, identically for every tool -------------------------------
	log "mutating $BENCH_MUTATE% of the dataset"
	"$GENDATA" -mutate "$BENCH_MUTATE" -mutate-seed "$SEED" "$DATA" >&2
	sync
	DATA_BYTES=$(du -sb "$DATA" | cut -f1)

	# --- phase 2: changed backup, restore ---------------------------------------
	for tool in $BENCH_TOOLS; do
		step "$tool" backup-changed backup "$DATA"
		restore_step "$tool"
	done
fi

# --- table ---------------------------------------------------------------------
read -r -a TOOLS <<<"$BENCH_TOOLS"

echo
if [ "$BENCH_BACKEND" = s3 ]; then
	echo "cairn benchmark $RUN_ID: dataset $BENCH_DATASET, $DATA_FILES files, $DATA_DIRS directories, $(mib "$DATA_BYTES") MiB, $(nproc) cores; MinIO on 127.0.0.1, latency $BENCH_LATENCY each way"
else
	echo "cairn benchmark $RUN_ID: scale $BENCH_SCALE, $DATA_FILES files, $(mib "$DATA_BYTES") MiB after mutation, $(nproc) cores"
fi
for tool in "${TOOLS[@]}"; do
	case $tool in
	cairn) echo "  cairn:  $CAIRN ($CAIRN_REV)" ;;
	restic) echo "  restic: $RESTIC ($("$RESTIC" version))" ;;
	esac
done
W=17
[ "$BENCH_BACKEND" = s3 ] && W=24
header=$(printf '%-*s' "$W" step)
for tool in "${TOOLS[@]}"; do
	header+=$(printf ' | %-7s %8s %8s %8s %9s' "$tool" wall_s cpu_s rss_MB repo_MiB)
done
both=0
if [[ " $BENCH_TOOLS " == *" cairn "* && " $BENCH_TOOLS " == *" restic "* ]]; then
	both=1
	header+=$(printf ' | %11s %10s %10s' 'wall r/c' 'cpu r/c' 'rss c/r')
fi
echo "$header"
echo "${header//?/-}"
for s in $STEPS; do
	row=$(printf '%-*s' "$W" "$s")
	for tool in "${TOOLS[@]}"; do
		row+=$(printf ' | %-7s %8s %8s %8s %9s' "" "${WALL[$tool,$s]}" "${CPU[$tool,$s]}" \
			"$(awk -v k="${RSS[$tool,$s]}" 'BEGIN { printf "%.0f", k / 1024 }')" "$(mib "${SIZE[$tool,$s]}")")
	done
	if [ "$both" = 1 ]; then
		row+=$(printf ' | %11s %10s %10s' \
			"$(ratio "${WALL[restic,$s]}" "${WALL[cairn,$s]}")" \
			"$(ratio "${CPU[restic,$s]}" "${CPU[cairn,$s]}")" \
			"$(ratio "${RSS[cairn,$s]}" "${RSS[restic,$s]}")")
	fi
	echo "$row"
done
if [ "$both" = 1 ]; then
	echo "wall r/c, cpu r/c: restic/cairn time (>1: cairn faster); rss c/r: cairn/restic peak RSS (<1: cairn smaller)"
fi
echo "backend: $BENCH_BACKEND; logs: $BENCH_DIR/logs; results: $RESULTS"
