#!/usr/bin/env bash
# Deterministic instruction count of ingest: runs one rtmp-edge binary (1 worker, pinned to
# SERVER_CORES) under `valgrind --tool=callgrind` with instrumentation off, switches it on
# (callgrind_control -i on) just before rtmp-load starts P publishers of the looped FLV
# (publish-only, DURATION s measured after WARMUP s), switches it off and dumps once rtmp-load
# has ended, then stops the server by PID. Prints instructions (Ir) per ingested MB, with
# ingested bytes = rtmp-load's publisher_bytes (the whole run, which is what was instrumented).
# callgrind slows the server ~50x: keep P small and check that publisher_bytes matches
# P x bitrate x elapsed_s (printed as "kept up"), or the comparison is about another workload.
# BIN=/path/rtmp-edge FLV=/path/input-2500k.flv OUT=dir NAME=after P=20 tools/bench/callgrind_ingest.sh
set -euo pipefail
BIN=${BIN:?rtmp-edge binary} FLV=${FLV:?looped FLV} OUT=${OUT:?results dir} NAME=${NAME:?label}
P=${P:-20} DURATION=${DURATION:-10} WARMUP=${WARMUP:-2}
SERVER_CORES=${SERVER_CORES:-0} LOAD_CORE=${LOAD_CORE:-1} PORT=${PORT:-19370} HTTP_PORT=${HTTP_PORT:-19390}
LOAD_BIN=${LOAD_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/rtmp-load}
mkdir -p "$OUT"
base=$OUT/cg.$NAME
cat >"$base.toml" <<CONF
[rtmp]
listen = ["127.0.0.1:$PORT"]
[http]
listen = ["127.0.0.1:$HTTP_PORT"]
[workers]
count = 1
max_connections = 65536
max_connections_per_ip = 0
CONF
taskset -c "$SERVER_CORES" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$base.out.%p" "$BIN" --config "$base.toml" >"$base.server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
callgrind_control -i on "$pid" >/dev/null
taskset -c "$LOAD_CORE" "$LOAD_BIN" --url "rtmp://127.0.0.1:$PORT/live/cg" --ramp 2000 \
    --duration "$DURATION" --warmup "$WARMUP" --json -q --flv "$FLV" --mode publish-only \
    --publishers "$P" >"$base.json" 2>"$base.load.stderr" || echo "rtmp-load failed" >&2
callgrind_control -i off "$pid" >/dev/null
callgrind_control -d "$pid" >/dev/null
kill -TERM "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT
out=$(ls -S "$base".out.$pid* | head -1)   # the dump with the load (the exit dump is empty)
ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !ir { gsub(",", "", $1); ir = $1 } END { print ir }')
jq -r --arg ir "$ir" --arg name "$NAME" --arg out "$out" '
    (.source | capture("\\((?<k>[0-9.]+) kbit/s\\)").k | tonumber) as $kbit |
    (.counters.publisher_bytes) as $b |
    ($b / (.connections.publishers_up * $kbit * 1000 / 8 * .elapsed_s)) as $kept |
    "\($name): Ir \($ir), publishers up \(.connections.publishers_up), publisher_bytes \($b), messages \(.counters.publisher_messages), errors \(.counters.errors), kept up \($kept * 1000 | round / 10) % of real time, Ir per ingested MB \(($ir | tonumber) / ($b / 1e6) | round), Ir per message \(($ir | tonumber) / .counters.publisher_messages | round) (\($out))"
' "$base.json" | tee "$base.summary"
