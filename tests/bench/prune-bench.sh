#!/usr/bin/env bash
# Benchmark cairn's prune against restic's on copies of the same repository.
#
#   bash tests/bench/prune-bench.sh
#
# Builds (once, cached in $BENCH_DIR) a repository with $PRUNE_SNAPSHOTS
# snapshots of the gendata dataset, mutated between backups (well over 1 GiB
# of pack data with the defaults), written by cairn. Then, for each tool, on
# its own copy of that repository: `forget --keep-last $PRUNE_KEEP` (not
# timed), then `prune` with the default --max-unused 5%, measured with GNU
# time (wall seconds, peak RSS). Afterwards each pruned repository is checked
# by the other tool, and the kept snapshots are compared.
#
# Prints a table and one line per tool:
#   BENCH {"tool":"cairn","step":"prune","wall_s":...,"max_rss_kb":...,...}
#
# Environment:
#   BENCH_DIR        work directory (default /tmp/cairn-prune-bench)
#   PRUNE_SCALE      gendata scale (default 0.1) with PRUNE_LARGE large files (default 2)
#   PRUNE_SNAPSHOTS  snapshots in the repository (default 100)
#   PRUNE_MUTATE     percentage mutated between backups (default 1)
#   PRUNE_KEEP       snapshots forget keeps (default 50)
#   BENCH_RESTIC     restic binary; default restic 0.19.1 from
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-0.19.1,
#                    else restic from PATH
# restic runs with --no-cache (the repository is local: a cache only adds work).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

BENCH_DIR=${BENCH_DIR:-/tmp/cairn-prune-bench}
PRUNE_SCALE=${PRUNE_SCALE:-0.1}
PRUNE_LARGE=${PRUNE_LARGE:-2}
PRUNE_SNAPSHOTS=${PRUNE_SNAPSHOTS:-100}
PRUNE_MUTATE=${PRUNE_MUTATE:-1}
PRUNE_KEEP=${PRUNE_KEEP:-50}
PASSWORD=cairn-bench-password
TIME=/usr/bin/time

while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(RESTIC|CAIRN)_' || true)
log() { echo "prune-bench: $*" >&2; }
die() { echo "prune-bench: error: $*" >&2; exit 1; }

"$TIME" -f '%e' true >/dev/null 2>&1 || die "GNU time is needed at $TIME (apt-get install time)"
mkdir -p "$BENCH_DIR/bin" "$BENCH_DIR/logs"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

CAIRN=$BENCH_DIR/bin/cairn
GENDATA=$BENCH_DIR/bin/gendata
go build -o "$CAIRN" ./cmd/cairn || die "cannot build cairn"
go build -o "$GENDATA" ./tests/bench/gendata || die "cannot build gendata"
RESTIC=${BENCH_RESTIC:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn/bin/restic-0.19.1}
if ! [ -x "$RESTIC" ]; then
	RESTIC=$(command -v restic) || die "no restic: set BENCH_RESTIC or install restic"
fi
log "restic: $RESTIC ($("$RESTIC" version))"

cairn() { env CAIRN_PASSWORD="$PASSWORD" CAIRN_KDF_N=1024 "$CAIRN" "$@"; }
restic() { env RESTIC_PASSWORD="$PASSWORD" "$RESTIC" --no-cache "$@"; }

# --- the repository, built once -------------------------------------------------
KEY=scale$PRUNE_SCALE-n$PRUNE_LARGE-snap$PRUNE_SNAPSHOTS-mut$PRUNE_MUTATE
BASE=$BENCH_DIR/repo-$KEY
if ! [ -f "$BASE.done" ]; then
	rm -rf "$BASE" "$BENCH_DIR/data"
	log "generating the dataset (scale $PRUNE_SCALE, $PRUNE_LARGE large files)"
	"$GENDATA" -q -scale "$PRUNE_SCALE" -n "$PRUNE_LARGE" -seed 1 "$BENCH_DIR/data"
	cairn -r "$BASE" init -q
	log "making $PRUNE_SNAPSHOTS snapshots, mutating $PRUNE_MUTATE% between them"
	start=$(date +%s)
	for i in $(seq 1 "$PRUNE_SNAPSHOTS"); do
		if [ "$i" -gt 1 ]; then
			"$GENDATA" -q -mutate "$PRUNE_MUTATE" -mutate-seed "$i" "$BENCH_DIR/data"
		fi
		when=$(date -u -d "2024-01-01 00:00:00 UTC + $((i * 7)) hours" '+%Y-%m-%d %H:%M:%S')
		cairn -r "$BASE" backup -q --host bench --time "$when" "$BENCH_DIR/data" ||
			die "backup $i failed"
	done
	log "made $PRUNE_SNAPSHOTS snapshots in $(($(date +%s) - start)) s"
	rm -rf "$BENCH_DIR/data"
	touch "$BASE.done"
fi
BEFORE=$(du -sb "$BASE/data" | cut -f1)
log "repository: $PRUNE_SNAPSHOTS snapshots, $BEFORE bytes of packs ($(awk -v b="$BEFORE" 'BEGIN { printf "%.2f GiB", b / 2^30 }'))"
[ "$BEFORE" -ge $((1 << 30)) ] || log "WARNING: less than 1 GiB of pack data; raise PRUNE_SNAPSHOTS or PRUNE_MUTATE"

# --- forget + prune on a copy per tool ------------------------------------------
declare -A WALL RSS AFTER
for tool in cairn restic; do
	repo=$BENCH_DIR/repo-$tool
	rm -rf "$repo"
	cp -a "$BASE" "$repo"
	rm -f "$repo.done"
	sync
	log "$tool: forget --keep-last $PRUNE_KEEP"
	"$tool" -r "$repo" forget --keep-last "$PRUNE_KEEP" >"$BENCH_DIR/logs/$tool-forget.log" 2>&1 ||
		die "$tool forget failed (see $BENCH_DIR/logs/$tool-forget.log)"
	log "$tool: prune"
	tf=$BENCH_DIR/logs/$tool-prune.time
	case $tool in
	cairn) cmd=(env CAIRN_PASSWORD="$PASSWORD" "$CAIRN" -r "$repo" prune) ;;
	restic) cmd=(env RESTIC_PASSWORD="$PASSWORD" "$RESTIC" --no-cache -r "$repo" prune) ;;
	esac
	"$TIME" -f '%e %M' -o "$tf" "${cmd[@]}" >"$BENCH_DIR/logs/$tool-prune.log" 2>&1 </dev/null ||
		{ tail -n 20 "$BENCH_DIR/logs/$tool-prune.log" >&2; die "$tool prune failed"; }
	read -r WALL[$tool] RSS[$tool] < <(tail -n 1 "$tf")
	AFTER[$tool]=$(du -sb "$repo/data" | cut -f1)
	line=$(printf '{"tool":"%s","step":"prune","wall_s":%s,"max_rss_kb":%s,"packs_before_bytes":%s,"packs_after_bytes":%s,"snapshots":%s,"kept":%s}' \
		"$tool" "${WALL[$tool]}" "${RSS[$tool]}" "$BEFORE" "${AFTER[$tool]}" "$PRUNE_SNAPSHOTS" "$PRUNE_KEEP")
	echo "BENCH $line"
	echo "$line" >>"$BENCH_DIR/results.jsonl"
done

# --- each tool checks the other's result -----------------------------------------
log "cross-checking: restic check on cairn's pruned repository, cairn check on restic's"
restic -r "$BENCH_DIR/repo-cairn" check >"$BENCH_DIR/logs/check-cairn-by-restic.log" 2>&1 ||
	die "restic check of cairn's pruned repository failed (see logs)"
cairn -r "$BENCH_DIR/repo-restic" check >"$BENCH_DIR/logs/check-restic-by-cairn.log" 2>&1 ||
	die "cairn check of restic's pruned repository failed (see logs)"
diff <(cairn -r "$BENCH_DIR/repo-cairn" list snapshots | sort) <(cairn -r "$BENCH_DIR/repo-restic" list snapshots | sort) >/dev/null ||
	die "the two tools kept different snapshots"

mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 2^20 }'; }
printf '\n%-8s %10s %12s %14s %14s\n' tool "prune s" "peak RSS" "packs before" "packs after"
for tool in cairn restic; do
	printf '%-8s %10s %9s MiB %14s %14s\n' "$tool" "${WALL[$tool]}" "$((RSS[$tool] / 1024))" "$(mib "$BEFORE")" "$(mib "${AFTER[$tool]}")"
done
awk -v c="${WALL[cairn]}" -v r="${WALL[restic]}" -v cm="${RSS[cairn]}" -v rm="${RSS[restic]}" \
	'BEGIN { printf "\nrestic/cairn time: %.2fx (>1: cairn faster); cairn/restic RSS: %.2fx (<1: cairn smaller)\n", r / c, cm / rm }'
