#!/usr/bin/env bash
# Syscalls, context switches and CPU of one ingest run, for machines without hardware
# counters: starts one server (SERVER=edge: the rtmp-edge binary BIN, 1 worker; SERVER=nginx:
# nginx-rtmp, 1 process), pinned to SERVER_CORES, runs rtmp-load on LOAD_CORE with P
# publishers of the looped FLV (publish-only), and WINDOW s after the start counts with
# `perf stat` (recvfrom, epoll_wait, context switches, page faults, task-clock) and /proc
# (utime, stime) over the next WINDOW s; prints one line with those, the RSS per publisher
# and rtmp-load's CPU % of the measured window. EXTRA adds lines to the edge's config (e.g.
# "[streams]\ngop_cache = false"). Stops the server by PID.
# BIN=target/release/rtmp-edge FLV=input-2500k.flv OUT=dir NAME=after tools/bench/ingest_counts.sh
set -euo pipefail
FLV=${FLV:?looped FLV} OUT=${OUT:?results dir} NAME=${NAME:?label} SERVER=${SERVER:-edge}
P=${P:-200} DURATION=${DURATION:-8} WINDOW=${WINDOW:-5} PORT=${PORT:-19480}
SERVER_CORES=${SERVER_CORES:-0} LOAD_CORE=${LOAD_CORE:-1}
LOAD_BIN=${LOAD_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/rtmp-load}
mkdir -p "$OUT"
base=$OUT/counts.$NAME
if [ "$SERVER" = nginx ]; then
    mkdir -p "$base.nginx/logs"
    cat >"$base.nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $base.nginx/nginx.pid;
error_log $base.nginx/logs/error.log warn;
events { worker_connections 60000; multi_accept on; }
rtmp { server { listen 127.0.0.1:$PORT; chunk_size 4096; application live { live on; record off; } } }
CONF
    taskset -c "$SERVER_CORES" /usr/sbin/nginx -p "$base.nginx" -c "$base.nginx/nginx.conf" \
        >"$base.server.log" 2>&1 &
else
    BIN=${BIN:?rtmp-edge binary}
    printf '[rtmp]\nlisten = ["127.0.0.1:%s"]\n[http]\nlisten = ["127.0.0.1:%s"]\n[workers]\ncount = 1\nmax_connections = 65536\nmax_connections_per_ip = 0\n%b\n' \
        "$PORT" "$((PORT + 1))" "${EXTRA:-}" >"$base.toml"
    taskset -c "$SERVER_CORES" "$BIN" --config "$base.toml" >"$base.server.log" 2>&1 &
fi
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
taskset -c "$LOAD_CORE" "$LOAD_BIN" --url "rtmp://127.0.0.1:$PORT/live/c" --ramp 2000 \
    --duration "$DURATION" --warmup 2 --server-pid "$pid" --json -q --flv "$FLV" \
    --mode publish-only --publishers "$P" >"$base.json" 2>"$base.load.stderr" &
load=$!
sleep "$WINDOW"
read -r -a st0 <"/proc/$pid/stat"
counts=$(perf stat -x, -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,context-switches,page-faults,task-clock' \
    -p "$pid" -- sleep "$WINDOW" 2>&1 | awk -F, '{ printf "%s=%s ", $3, $1 }')
read -r -a st1 <"/proc/$pid/stat"
wait "$load" || echo "rtmp-load failed" >&2
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT
tick=$(getconf CLK_TCK)
echo "$NAME: ${counts}utime_ms=$(((st1[13] - st0[13]) * 1000 / tick)) stime_ms=$(((st1[14] - st0[14]) * 1000 / tick)) $(jq -r '"rss_per_publisher_kb=\(.server.rss_per_conn_kb) window_cpu_percent=\(.server.cpu_percent * 10 | round / 10) publishers_up=\(.connections.publishers_up) errors=\(.counters.errors)"' "$base.json")" |
    tee "$base.summary"
