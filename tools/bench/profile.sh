#!/usr/bin/env bash
# perf profile of one server under one load: starts SERVER (a variant as in lib.sh: edge, nginx,
# edge-c20 ...), runs rtmp-load with the given arguments, and records `perf record -g` on the
# server for PERF_SECONDS (default 5) once the measurement window has started; then writes
# `perf report --no-children --sort sym` (top symbols) next to the load report.
# SERVER=edge tools/bench/profile.sh fanout500 --flv F --players 500
. "$(dirname "$0")/lib.sh"
SERVER=${SERVER:-edge}
PERF_SECONDS=${PERF_SECONDS:-5}
PERF_CG=${PERF_CG:-fp}  # fp is `perf record -g`; dwarf unwinds Rust frames (no frame pointers)
name=${1:?usage: profile.sh NAME rtmp-load-args...}
shift
SERVERS=$SERVER
bench_setup
command -v perf >/dev/null || { log "perf is missing (apt-get install linux-perf)"; exit 1; }
mkdir -p "$OUT/perf"
base=$OUT/perf/$name.$SERVER${PERF_TAG:-}
start_server "$SERVER"
run_load "$base.json" "$name" "$@" &
load_pid=$!
# Ramp-up plus warm-up, then one second into the window.
players=$(printf '%s\n' "$@" | awk 'p { print; exit } $0 == "--players" { p = 1 }')
publishers=$(printf '%s\n' "$@" | awk 'p { print; exit } $0 == "--publishers" { p = 1 }')
conns=$(( ${players:-10} * ${publishers:-1} + ${publishers:-1} ))
sleep "$(awk -v c="$conns" -v r="$RAMP" -v w="$WARMUP" 'BEGIN { print c / r + w + 1.5 }')"
perf record --call-graph "$PERF_CG" -o "$base.perf.data" -p "$SERVER_PID" -- sleep "$PERF_SECONDS" 2>"$base.perf.log"
wait "$load_pid" || log "rtmp-load failed"
stop_server
perf report -i "$base.perf.data" --no-children --sort sym --stdio 2>/dev/null |
    grep -v '^$' >"$base.report.txt"
grep -E '^ +[0-9.]+%' "$base.report.txt" | head -40 >"$base.top.txt"
cat "$base.top.txt"
log "profile: $base.report.txt; load report: $base.json"
