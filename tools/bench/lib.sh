#!/usr/bin/env bash
# Shared helpers for the benchmark scripts: install what is missing, start/stop rtmp-edge and
# nginx-rtmp by PID (each pinned to SERVER_CORES with one worker), run rtmp-load pinned to
# LOAD_CORE, and append markdown rows with edge/nginx ratios.
#
# Source it:  . "$(dirname "$0")/lib.sh"
# Knobs (environment): SERVER_CORES (default 0), LOAD_CORE (default 1), EDGE_PORT (19360),
# NGINX_PORT (19361), DURATION (seconds per run, 15), RAMP (connections/s, 1000),
# OUT (results dir, target/bench/<date>), SERVERS ("edge nginx"), EDGE_BIN, LOAD_BIN.
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVER_CORES=${SERVER_CORES:-0}
LOAD_CORE=${LOAD_CORE:-1}
EDGE_PORT=${EDGE_PORT:-19360}
NGINX_PORT=${NGINX_PORT:-19361}
DURATION=${DURATION:-15}
RAMP=${RAMP:-1000}
SERVERS=${SERVERS:-"edge nginx"}
OUT=${OUT:-$BENCH_ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
EDGE_BIN=${EDGE_BIN:-$BENCH_ROOT/target/release/rtmp-edge}
LOAD_BIN=${LOAD_BIN:-$BENCH_ROOT/target/release/rtmp-load}
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
NGINX_BIN=/usr/sbin/nginx

STARTED_PIDS=()
SERVER_PID=""

log() { echo "bench: $*" >&2; }

# Installs nginx + the RTMP module, ffmpeg, jq when missing; builds the release binaries.
bench_setup() {
    local need=()
    [ -x "$NGINX_BIN" ] || need+=(nginx)
    [ -f "$RTMP_MODULE" ] || need+=(libnginx-mod-rtmp)
    command -v ffmpeg >/dev/null || need+=(ffmpeg)
    command -v jq >/dev/null || need+=(jq)
    command -v taskset >/dev/null || need+=(util-linux)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
    if [ -z "${SKIP_BUILD:-}" ]; then
        (cd "$BENCH_ROOT" && cargo build --release -q -p rtmp-load && \
            { case " $SERVERS " in *" edge "*) cargo build --release -q -p rtmp-edge ;; esac; })
    fi
    mkdir -p "$OUT"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    trap bench_cleanup EXIT INT TERM
    if [ "$(nproc)" -lt 2 ]; then
        log "WARNING: fewer than 2 cores: server and load generator will share a core"
    fi
}

# Stops every process this script started, by PID.
bench_cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] && stop_pid "$pid"
    done
    STARTED_PIDS=()
}

# stop_pid PID: TERM, then KILL after 5 s; waits for it.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most).
wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$port after 10 s"
    return 1
}

# start_nginx: nginx-rtmp, one process (no master), pinned to SERVER_CORES. Sets SERVER_PID.
start_nginx() {
    local dir=$OUT/nginx
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<CONF
load_module $RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 60000; multi_accept on; }
rtmp {
    server {
        listen 127.0.0.1:$NGINX_PORT;
        chunk_size 4096;
        application live { live on; record off; }
    }
}
CONF
    taskset -c "$SERVER_CORES" "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" \
        >"$dir/logs/stdout.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_port "$NGINX_PORT"
    SERVER_URL_BASE="rtmp://127.0.0.1:$NGINX_PORT/live"
}

# start_edge [WORKERS]: rtmp-edge with WORKERS workers (default 1), pinned to SERVER_CORES.
start_edge() {
    local workers=${1:-1} dir=$OUT/edge
    mkdir -p "$dir"
    cat >"$dir/edge.toml" <<CONF
[rtmp]
listen = ["127.0.0.1:$EDGE_PORT"]

[workers]
count = $workers
max_connections = 65536
max_connections_per_ip = 0
CONF
    taskset -c "$SERVER_CORES" "$EDGE_BIN" --config "$dir/edge.toml" >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_port "$EDGE_PORT"
    SERVER_URL_BASE="rtmp://127.0.0.1:$EDGE_PORT/live"
}

# start_server NAME [WORKERS]
start_server() {
    case $1 in
    edge) start_edge "${2:-1}" ;;
    nginx) start_nginx ;;
    *) log "unknown server $1"; return 1 ;;
    esac
}

# stop_server: stops SERVER_PID.
stop_server() {
    stop_pid "$SERVER_PID"
    local kept=() pid
    for pid in "${STARTED_PIDS[@]}"; do [ "$pid" != "$SERVER_PID" ] && kept+=("$pid"); done
    STARTED_PIDS=("${kept[@]:-}")
    SERVER_PID=""
}

# run_load JSON_OUT STREAM rtmp-load-args...: runs rtmp-load pinned to LOAD_CORE against the
# running server, sampling its PID; the JSON report goes to JSON_OUT.
run_load() {
    local json=$1 stream=$2
    shift 2
    taskset -c "$LOAD_CORE" "$LOAD_BIN" --url "$SERVER_URL_BASE/$stream" --ramp "$RAMP" \
        --duration "$DURATION" --server-pid "$SERVER_PID" --json "$@" >"$json"
}

# make_media BITRATE_KBIT: the looped input FLV (cached under OUT/media); prints its path.
make_media() {
    local kbit=$1 f=$OUT/media/input-${1}k.flv
    if [ ! -s "$f" ]; then
        "$BENCH_ROOT/tools/media/make_flv.sh" "$f" "$kbit" 25 50 10 640x360 >&2
    fi
    echo "$f"
}

# table_header FILE: starts a markdown results table.
table_header() {
    cat >>"$1" <<'MD'
| case | server | players | Mbit/s | msg/s | p50 ms | p99 ms | max ms | stalls | errors | server CPU % | CPU-s/GB | µs/1k msgs | KiB/conn | loader CPU % |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
MD
}

# table_row FILE CASE SERVER JSON: one row from a report.
table_row() {
    local file=$1 case=$2 server=$3 json=$4
    jq -r --arg c "$case" --arg s "$server" '
        def n(x; p): if x == null then "-" else (x * p | round / p | tostring) end;
        "| \($c) | \($s) | \(.connections.players_target) | \(n(.window.throughput_mbit_s; 10)) | \(n(.window.messages_per_s; 1)) | \(n(.latency_ms.p50; 100)) | \(n(.latency_ms.p99; 100)) | \(n(.latency_ms.max; 100)) | \(.counters.stalls) | \(.counters.errors + .counters.disconnects) | \(n(.server.cpu_percent; 10)) | \(n(.server.cpu_s_per_gb; 1000)) | \(n(.server.cpu_us_per_1k_msgs; 10)) | \(n(.server.rss_per_conn_kb; 10)) | \(n(.loader.cpu_percent_avg; 1)) |"
    ' "$json" >>"$file"
    jq -r '(.warnings // [])[]' "$json" | while read -r w; do
        log "WARNING ($case/$server): $w"
        echo "> WARNING ($case/$server): $w" >>"$file.warnings"
    done
}

# ratio_row FILE CASE EDGE_JSON NGINX_JSON: edge/nginx ratios of the cost and latency columns
# (below 1 means rtmp-edge is cheaper or faster).
ratio_row() {
    local file=$1 case=$2 a=$3 b=$4
    jq -rn --arg c "$case" --slurpfile a "$a" --slurpfile b "$b" '
        def r(x; y): if x == null or y == null or y == 0 then "-" else (x / y * 100 | round / 100 | tostring) + "×" end;
        $a[0] as $e | $b[0] as $g |
        "| \($c) | **edge/nginx** | | \(r($e.window.throughput_mbit_s; $g.window.throughput_mbit_s)) | | \(r($e.latency_ms.p50; $g.latency_ms.p50)) | \(r($e.latency_ms.p99; $g.latency_ms.p99)) | \(r($e.latency_ms.max; $g.latency_ms.max)) | | | \(r($e.server.cpu_percent; $g.server.cpu_percent)) | \(r($e.server.cpu_s_per_gb; $g.server.cpu_s_per_gb)) | \(r($e.server.cpu_us_per_1k_msgs; $g.server.cpu_us_per_1k_msgs)) | \(r($e.server.rss_per_conn_kb; $g.server.rss_per_conn_kb)) | |"
    ' >>"$file"
}

# compare CASE TABLE STREAM rtmp-load-args...: runs each server in SERVERS (fresh start each,
# alternating) under the same load, appends rows and, with both servers, a ratio row.
compare() {
    local case=$1 table=$2 stream=$3 server json
    shift 3
    local slug
    slug=$(printf '%s' "$case" | tr -c 'A-Za-z0-9._-' '_')
    for server in $SERVERS; do
        json=$OUT/$slug.$server.json
        log "$case: $server"
        start_server "$server"
        if run_load "$json" "$stream" "$@"; then
            table_row "$table" "$case" "$server" "$json"
        else
            log "$case: rtmp-load failed against $server"
            echo "| $case | $server | rtmp-load failed | | | | | | | | | | | | |" >>"$table"
        fi
        stop_server
    done
    if [ -s "$OUT/$slug.edge.json" ] && [ -s "$OUT/$slug.nginx.json" ]; then
        ratio_row "$table" "$case" "$OUT/$slug.edge.json" "$OUT/$slug.nginx.json"
    fi
}
