#!/usr/bin/env bash
# Shared helpers for the benchmark scripts: install what is missing, start/stop rtmp-edge and
# nginx-rtmp by PID (each pinned to SERVER_CORES with one worker), run rtmp-load pinned to
# LOAD_CORE, repeat every point REPS times alternating the servers run by run, and append
# markdown tables of medians with ratios (first variant / second variant, e.g. edge/nginx).
#
# Source it:  . "$(dirname "$0")/lib.sh"
# Knobs (environment):
#   SERVER_CORES (default 0)   LOAD_CORE (1)   EDGE2_CORES (0,1: cores of multi-worker edge)
#   EDGE_PORT (19360)  NGINX_PORT (19361)  DURATION (measured seconds per run, 8)
#   WARMUP (2)  RAMP (connections/s, 2000)  REPS (runs per point and server, 3)
#   NICE (-10: niceness of server and rtmp-load, same for both servers; "" to disable). With
#     NICE set, the script re-runs itself under setsid (its own scheduler autogroup) and gives
#     that autogroup the same niceness: with kernel.sched_autogroup_enabled = 1, a per-process
#     nice only ranks processes inside their session's autogroup, not against other sessions.
#   OUT (results dir, target/bench/<date>)  SERVERS ("edge nginx")  EDGE_BIN  LOAD_BIN
#   EDGE_HTTP_PORT (19380)  NGINX_HTTP_PORT (19381)  NGINX_HLS_DIR (OUT/nginx/hls)
#   RATIOS (ratio rows of compare, "A/B ...": default the first over the second of SERVERS;
#     "none" for none)  SUMMARY_ROW / RATIO_ROW (row functions of compare: summary_row and
#     ratio_row, or hls_row / hls_ratio_row, llhls_row)
# Server variants (words of SERVERS): edge (1 worker), nginx (1 worker process),
#   edge-w<N> (N workers pinned over EDGE2_CORES), edge-c<MS> (workers.max_write_delay_ms = MS; the
#   other edge variants run its default),
#   edge-flv (edge; players are HTTP-FLV viewers), edge-hls (edge, plain HLS: hls_part_ms = 0),
#   edge-llhls (2000 ms segments, 500 ms parts), edge-llhls200 (1000 ms segments, 200 ms
#   parts), nginx-hls (nginx-rtmp writing HLS, served by nginx http), edge-before (like edge,
#   but runs the binary EDGE_BIN_BEFORE: a build of an older commit, so one session can compare
#   two rtmp-edge builds and nginx run by run, e.g. EDGE_BIN_BEFORE=/path/old/rtmp-edge
#   SERVERS="edge-before edge nginx" RATIOS="edge/edge-before edge/nginx edge-before/nginx").
#   edge-uring / edge-epoll: like edge, with the io_uring / epoll backend (RTMP_EDGE_IO).
#   edge-u<MS>: like edge, with workers.unwatched_read_ms = MS (how often publishers of
#   unwatched streams are read; 0 reads them on arrival, as before it existed).
#   edge-pull: like edge, but the stream is published to an origin rtmp-edge (1 worker,
#   pinned to LOAD_CORE, port ORIGIN_PORT 19362) that the edge pulls from ([relay] origins);
#   rtmp-load publishes there (--publish-url) and plays from the edge; only the edge's CPU
#   is sampled.
#   edge-tls: like edge, plus an [rtmps] listener on EDGE_TLS_PORT (19363) with a self-signed
#   certificate made with openssl (TLS_KEY: rsa, RSA-2048, the default; or ec, ECDSA P-256);
#   rtmp-load publishes and plays over rtmps:// (its TLS client does not verify it).
#   The edge's HLS variants
#   package on demand (the default) with DASH off; variant_args gives each variant's rtmp-load
#   arguments.
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVER_CORES=${SERVER_CORES:-0}
LOAD_CORE=${LOAD_CORE:-1}
EDGE2_CORES=${EDGE2_CORES:-0,1}
EDGE_PORT=${EDGE_PORT:-19360}
ORIGIN_PORT=${ORIGIN_PORT:-19362}
EDGE_TLS_PORT=${EDGE_TLS_PORT:-19363}
ORIGIN_HTTP_PORT=${ORIGIN_HTTP_PORT:-19382}
NGINX_PORT=${NGINX_PORT:-19361}
EDGE_HTTP_PORT=${EDGE_HTTP_PORT:-19380}
NGINX_HTTP_PORT=${NGINX_HTTP_PORT:-19381}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
RAMP=${RAMP:-2000}
REPS=${REPS:-3}
NICE=${NICE--10}
SERVERS=${SERVERS:-"edge nginx"}
OUT=${OUT:-$BENCH_ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
NGINX_HLS_DIR=${NGINX_HLS_DIR:-$OUT/nginx/hls}
RATIOS=${RATIOS:-}
SUMMARY_ROW=${SUMMARY_ROW:-summary_row}
RATIO_ROW=${RATIO_ROW:-ratio_row}
EDGE_BIN=${EDGE_BIN:-$BENCH_ROOT/target/release/rtmp-edge}
EDGE_BIN_BEFORE=${EDGE_BIN_BEFORE:-}
LOAD_BIN=${LOAD_BIN:-$BENCH_ROOT/target/release/rtmp-load}
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
NGINX_BIN=/usr/sbin/nginx

STARTED_PIDS=()
SERVER_PID=""
ORIGIN_PID=""

# Own session, so the autogroup niceness set in bench_setup covers only this benchmark.
if [ -n "$NICE" ] && [ -z "${BENCH_SETSID:-}" ] && command -v setsid >/dev/null; then
    export BENCH_SETSID=1
    exec setsid -w "$0" "$@"
fi

log() { echo "bench: $(date +%T) $*" >&2; }

# prio: the command prefix that sets the niceness (empty when NICE is empty).
prio() {
    if [ -n "$NICE" ]; then echo "nice -n $NICE"; fi
}

# Installs nginx + the RTMP module, ffmpeg, jq when missing; builds the release binaries.
bench_setup() {
    local need=()
    [ -x "$NGINX_BIN" ] || need+=(nginx)
    [ -f "$RTMP_MODULE" ] || need+=(libnginx-mod-rtmp)
    command -v ffmpeg >/dev/null || need+=(ffmpeg)
    command -v jq >/dev/null || need+=(jq)
    command -v openssl >/dev/null || need+=(openssl)
    command -v taskset >/dev/null || need+=(util-linux)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
    if [ -z "${SKIP_BUILD:-}" ]; then
        (cd "$BENCH_ROOT" && cargo build --release -q --workspace)
    fi
    mkdir -p "$OUT"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    trap bench_cleanup EXIT
    trap 'bench_cleanup; exit 130' INT TERM
    if [ -n "$NICE" ] && [ -w /proc/$$/autogroup ]; then
        echo "$NICE" >/proc/$$/autogroup 2>/dev/null || log "cannot renice autogroup"
        log "autogroup: $(cat /proc/$$/autogroup)"
    fi
    if [ "$(nproc)" -lt 2 ]; then
        log "WARNING: fewer than 2 cores: server and load generator will share a core"
    fi
    machine_info >>"$OUT/machine.txt"
}

# machine_info: CPU model, cores, kernel, load, versions (for the report).
machine_info() {
    echo "date: $(date -Is)"
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L2|L3)' || true
    echo "kernel: $(uname -r)"
    echo "uptime: $(uptime)"
    echo "autogroup: $(cat /proc/$$/autogroup 2>/dev/null) (sched_autogroup_enabled=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null))"
    echo "nginx: $("$NGINX_BIN" -v 2>&1)"
    echo "rtmp-edge: $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)"
    echo "binaries: EDGE_BIN=$EDGE_BIN EDGE_BIN_BEFORE=${EDGE_BIN_BEFORE:--} LOAD_BIN=$LOAD_BIN"
    echo "settings: SERVER_CORES=$SERVER_CORES LOAD_CORE=$LOAD_CORE DURATION=$DURATION WARMUP=$WARMUP RAMP=$RAMP REPS=$REPS NICE=$NICE"
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

# start_nginx [hls]: nginx-rtmp, one process (no master), pinned to SERVER_CORES. Sets
# SERVER_PID. With "hls", the application also writes HLS (2 s fragments, 12 s playlist, like
# the edge's 6-segment window) to NGINX_HLS_DIR, emptied first, and nginx http serves it at
# http://127.0.0.1:NGINX_HTTP_PORT/live/STREAM.m3u8 (sendfile, long keep-alive).
start_nginx() {
    local dir=$OUT/nginx hls_app="" http=""
    mkdir -p "$dir/logs"
    if [ "${1:-}" = hls ]; then
        rm -rf "$NGINX_HLS_DIR"
        mkdir -p "$NGINX_HLS_DIR" "$dir/tmp"
        hls_app="hls on; hls_path $NGINX_HLS_DIR; hls_fragment 2s; hls_playlist_length 12s;"
        http="http {
    access_log off;
    log_not_found off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_HTTP_PORT reuseport backlog=65535;
        location /live/ {
            alias $NGINX_HLS_DIR/;
            types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
            add_header Cache-Control no-cache;
        }
    }
}"
    fi
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
        application live { live on; record off; $hls_app }
    }
}
$http
CONF
    # shellcheck disable=SC2046
    $(prio) taskset -c "$SERVER_CORES" "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" \
        >"$dir/logs/stdout.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_port "$NGINX_PORT"
    [ -z "$http" ] || wait_port "$NGINX_HTTP_PORT"
    SERVER_URL_BASE="rtmp://127.0.0.1:$NGINX_PORT/live"
}

# start_edge [WORKERS] [WRITE_DELAY_MS: "" for the default] [CORES] [HTTP_KEYS] [BIN] [MORE]: rtmp-edge (BIN,
# default EDGE_BIN) pinned to CORES (default SERVER_CORES), HTTP on 127.0.0.1:EDGE_HTTP_PORT;
# HTTP_KEYS are more [http] lines, MORE more sections at the end.
start_edge() {
    local workers=${1:-1} delay=${2:-} cores=${3:-$SERVER_CORES} http_keys=${4:-} dir=$OUT/edge
    local bin=${5:-$EDGE_BIN} more=${6:-}
    mkdir -p "$dir"
    cat >"$dir/edge.toml" <<CONF
[rtmp]
listen = ["127.0.0.1:$EDGE_PORT"]

[http]
listen = ["127.0.0.1:$EDGE_HTTP_PORT"]
$http_keys

[workers]
count = $workers
max_connections = 65536
max_connections_per_ip = 0
${delay:+max_write_delay_ms = $delay}
${UNWATCHED_MS:+unwatched_read_ms = $UNWATCHED_MS}

$more
CONF
    # shellcheck disable=SC2046
    $(prio) taskset -c "$cores" "$bin" --config "$dir/edge.toml" >>"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_port "$EDGE_PORT"
    wait_port "$EDGE_HTTP_PORT"
    SERVER_URL_BASE="rtmp://127.0.0.1:$EDGE_PORT/live"
}

# start_origin: an origin rtmp-edge (1 worker) pinned to LOAD_CORE on ORIGIN_PORT, for
# edge-pull. Sets ORIGIN_PID.
start_origin() {
    local dir=$OUT/origin
    mkdir -p "$dir"
    cat >"$dir/origin.toml" <<CONF
[rtmp]
listen = ["127.0.0.1:$ORIGIN_PORT"]

[http]
listen = ["127.0.0.1:$ORIGIN_HTTP_PORT"]

[workers]
count = 1
max_connections_per_ip = 0
CONF
    # shellcheck disable=SC2046
    $(prio) taskset -c "$LOAD_CORE" "$EDGE_BIN" --config "$dir/origin.toml" >>"$dir/stdout.log" 2>&1 &
    ORIGIN_PID=$!
    STARTED_PIDS+=("$ORIGIN_PID")
    wait_port "$ORIGIN_PORT"
}

# tls_cert: a self-signed certificate for localhost/127.0.0.1 in OUT/tls-TLS_KEY (made once); prints
# the [rtmps] section serving it on EDGE_TLS_PORT.
tls_cert() {
    local dir=$OUT/tls-${TLS_KEY:-rsa} newkey=(rsa:2048)
    [ "${TLS_KEY:-rsa}" != ec ] || newkey=(ec -pkeyopt ec_paramgen_curve:prime256v1)
    if [ ! -s "$dir/cert.pem" ]; then
        mkdir -p "$dir"
        openssl req -x509 -newkey "${newkey[@]}" -nodes -days 30 -subj /CN=localhost \
            -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    fi
    printf '[rtmps]\nlisten = ["127.0.0.1:%s"]\ncert = "%s"\nkey = "%s"\n' \
        "$EDGE_TLS_PORT" "$dir/cert.pem" "$dir/key.pem"
}

# start_server VARIANT: edge | nginx | edge-w<N> | edge-c<MS> | edge-u<MS> | edge-flv | edge-hls |
# edge-llhls | edge-llhls200 | nginx-hls | edge-before
start_server() {
    local nl=$'\n'
    case $1 in
    edge | edge-flv) start_edge 1 ;;
    edge-tls)
        start_edge 1 "" "$SERVER_CORES" "" "$EDGE_BIN" "$(tls_cert)"
        wait_port "$EDGE_TLS_PORT"
        SERVER_URL_BASE="rtmps://127.0.0.1:$EDGE_TLS_PORT/live" ;;
    edge-pull)
        start_origin
        start_edge 1 "" "$SERVER_CORES" "" "$EDGE_BIN" "[relay]${nl}origins = [\"rtmp://127.0.0.1:$ORIGIN_PORT\"]" ;;
    edge-before)
        [ -x "$EDGE_BIN_BEFORE" ] || { log "edge-before needs EDGE_BIN_BEFORE"; return 1; }
        start_edge 1 "" "$SERVER_CORES" "" "$EDGE_BIN_BEFORE" ;;
    edge-hls) start_edge 1 "" "$SERVER_CORES" "hls_segment_ms = 2000${nl}hls_part_ms = 0${nl}dash = false" ;;
    edge-llhls) start_edge 1 "" "$SERVER_CORES" "hls_segment_ms = 2000${nl}hls_part_ms = 500${nl}dash = false" ;;
    edge-llhls200) start_edge 1 "" "$SERVER_CORES" "hls_segment_ms = 1000${nl}hls_part_ms = 200${nl}dash = false" ;;
    edge-w*) start_edge "${1#edge-w}" "" "$EDGE2_CORES" ;;
    edge-c*) start_edge 1 "${1#edge-c}" ;;
    edge-uring) RTMP_EDGE_IO=io_uring start_edge 1 ;;
    edge-epoll) RTMP_EDGE_IO=epoll start_edge 1 ;;
    edge-u[0-9]*) UNWATCHED_MS=${1#edge-u} start_edge 1 ;;
    nginx) start_nginx ;;
    nginx-hls) start_nginx hls ;;
    *) log "unknown server $1"; return 1 ;;
    esac
}

# variant_args VARIANT STREAM: the extra rtmp-load arguments of a server variant, one a line
# (none for the RTMP variants).
variant_args() {
    case $1 in
    edge-pull) printf '%s\n' --publish-url "rtmp://127.0.0.1:$ORIGIN_PORT/live/$2" ;;
    edge-flv) printf '%s\n' --player-proto http-flv --http-port "$EDGE_HTTP_PORT" ;;
    edge-hls | edge-llhls*) printf '%s\n' --http-port "$EDGE_HTTP_PORT" ;;
    nginx-hls) printf '%s\n' --http-port "$NGINX_HTTP_PORT" ;;
    esac
}

# stop_server: stops SERVER_PID; complains when it died on its own during the run.
stop_server() {
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "WARNING: server pid $SERVER_PID was not running at the end of the run"
    fi
    stop_pid "$SERVER_PID"
    [ -z "$ORIGIN_PID" ] || stop_pid "$ORIGIN_PID"
    local kept=() pid
    for pid in "${STARTED_PIDS[@]}"; do
        [ "$pid" != "$SERVER_PID" ] && [ "$pid" != "$ORIGIN_PID" ] && kept+=("$pid")
    done
    STARTED_PIDS=("${kept[@]:-}")
    SERVER_PID=""
    ORIGIN_PID=""
}

# run_load JSON_OUT STREAM rtmp-load-args...: runs rtmp-load pinned to LOAD_CORE against the
# running server, sampling its PID; the JSON report goes to JSON_OUT, the 1-minute load
# average at the end of the run to JSON_OUT.load.
run_load() {
    local json=$1 stream=$2 rc=0
    shift 2
    # shellcheck disable=SC2046
    $(prio) taskset -c "$LOAD_CORE" "$LOAD_BIN" --url "$SERVER_URL_BASE/$stream" --ramp "$RAMP" \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --json -q "$@" \
        >"$json" 2>"$json.stderr" || rc=$?
    cut -d' ' -f1 /proc/loadavg >"$json.load"
    return $rc
}

# make_media BITRATE_KBIT: the looped input FLV (cached under OUT/media); prints its path.
make_media() {
    local kbit=$1 f=$OUT/media/input-${1}k.flv
    if [ ! -s "$f" ]; then
        "$BENCH_ROOT/tools/media/make_flv.sh" "$f" "$kbit" 25 50 10 640x360 >&2
    fi
    echo "$f"
}

# table_header FILE: starts a markdown table of medians.
table_header() {
    cat >>"$1" <<'MD'
| case | server | runs | players up | Mbit/s | msg/s | server CPU % | CPU-s/GB | µs/msg | p50 ms | p99 ms | max ms | TTFF p50 / p99 ms | stalls Σ | errors+disc Σ | KiB/conn | server rq-wait % | loader CPU % | loader rq-wait % | load1 |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
MD
}

# The jq definitions shared by the median and ratio rows: med(f) is the median of f over the
# reports in the input array (nulls dropped), n(x; p) rounds for display.
JQ_DEFS='
def med(f): [ .[] | f | select(. != null) ] | sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def n(x; p): if x == null then "-" else (x * p | round / p | tostring) end;
def usmsg: .server.cpu_us_per_1k_msgs | if . == null then null else . / 1000 end;
'

# summary_row FILE CASE SERVER JSON...: one row of medians over the runs' reports.
summary_row() {
    local file=$1 case=$2 server=$3
    shift 3
    local loads
    loads=$(for j in "$@"; do cat "$j.load" 2>/dev/null || echo null; done | jq -s -c .)
    jq -rn --arg c "$case" --arg s "$server" --argjson loads "$loads" "$JQ_DEFS"'
        [ inputs ] | . as $r |
        ($loads | sort | .[length / 2 | floor]) as $load1 |
        "| \($c) | \($s) | \($r | length) | \(n(med(.connections.players_up); 1))/\($r[0].connections.players_target) | \(n(med(.window.throughput_mbit_s); 10)) | \(n(med(.window.messages_per_s); 1)) | \(n(med(.server.cpu_percent); 10)) | \(n(med(.server.cpu_s_per_gb); 100)) | \(n(med(usmsg); 100)) | \(n(med(.latency_ms.p50); 10)) | \(n(med(.latency_ms.p99); 10)) | \(n(med(.latency_ms.max); 10)) | \(n(med(.first_frame_ms.p50); 10)) / \(n(med(.first_frame_ms.p99); 10)) | \([ $r[].counters.stalls ] | add) | \([ $r[] | .counters.errors + .counters.disconnects ] | add) | \(n(med(.server.rss_per_conn_kb); 10)) | \(n(med(.server.runqueue_wait_percent); 1)) | \(n(med(.loader.cpu_percent_avg); 1)) | \(n(med(.loader.runqueue_wait_percent); 1)) | \($load1) |"
    ' "$@" >>"$file"
}

# ratio_row FILE CASE LABEL A_JSONS B_JSONS: ratios of the medians of A over B (below 1 means A
# is cheaper or faster). A_JSONS and B_JSONS are space-separated lists.
ratio_row() {
    local file=$1 case=$2 label=$3 a=$4 b=$5
    local ja jb
    # shellcheck disable=SC2086
    ja=$(jq -s -c . $a)
    # shellcheck disable=SC2086
    jb=$(jq -s -c . $b)
    jq -rn --arg c "$case" --arg l "$label" --argjson a "$ja" --argjson b "$jb" "$JQ_DEFS"'
        def rr(f): ($a | med(f)) as $x | ($b | med(f)) as $y |
            if $x == null or $y == null or $y == 0 then "-" else ($x / $y * 100 | round / 100 | tostring) + "×" end;
        "| \($c) | **\($l)** | | | \(rr(.window.throughput_mbit_s)) | \(rr(.window.messages_per_s)) | \(rr(.server.cpu_percent)) | **\(rr(.server.cpu_s_per_gb))** | **\(rr(.server.cpu_us_per_1k_msgs))** | \(rr(.latency_ms.p50)) | \(rr(.latency_ms.p99)) | \(rr(.latency_ms.max)) | \(rr(.first_frame_ms.p50)) / \(rr(.first_frame_ms.p99)) | | | \(rr(.server.rss_per_conn_kb)) | | | | |"
    ' >>"$file"
}

# raw_row FILE CASE SERVER REP JSON: one line per run (appended to OUT/runs.md).
raw_row() {
    local file=$1 case=$2 server=$3 rep=$4 json=$5
    local load1
    load1=$(cat "$json.load" 2>/dev/null || echo -)
    jq -r --arg c "$case" --arg s "$server" --arg rep "$rep" --arg l "$load1" '
        def n(x; p): if x == null then "-" else (x * p | round / p | tostring) end;
        def usmsg: .server.cpu_us_per_1k_msgs | if . == null then null else . / 1000 end;
        "| \($c) | \($s) | \($rep) | \(.connections.players_up)/\(.connections.players_target) | \(n(.window.throughput_mbit_s; 10)) | \(n(.server.cpu_percent; 10)) | \(n(.server.cpu_s_per_gb; 100)) | \(n(usmsg; 100)) | \(n(.latency_ms.p50; 10)) | \(n(.latency_ms.p99; 10)) | \(n(.first_frame_ms.p50; 10)) | \(.counters.stalls) | \(.counters.errors) | \(.counters.disconnects) | \(n(.server.rss_per_conn_kb; 10)) | \(n(.server.runqueue_wait_percent; 1)) | \(n(.loader.cpu_percent_avg; 1)) | \(n(.loader.runqueue_wait_percent; 1)) | \($l) |"
    ' "$json" >>"$file"
    jq -r '(.warnings // [])[]' "$json" | while read -r w; do
        echo "> $case / $server / run $rep: $w" >>"$OUT/warnings.md"
    done
    jq -r '(.errors // [])[] | tostring' "$json" | head -5 | while read -r e; do
        echo "> $case / $server / run $rep: error: $e" >>"$OUT/warnings.md"
    done
}

# compare CASE TABLE STREAM rtmp-load-args...: REPS rounds; in each round every variant in
# SERVERS runs once (fresh start each, so the servers alternate run by run) under the same
# load. Appends a median row per variant and, with two or more variants, the ratio of the
# first over the second.
compare() {
    local case=$1 table=$2 stream=$3 server json rep
    shift 3
    local slug
    slug=$(printf '%s' "$case" | tr -c 'A-Za-z0-9._-' '_')
    [ -s "$OUT/runs.md" ] || {
        echo "| case | server | run | players up | Mbit/s | CPU % | CPU-s/GB | µs/msg | p50 ms | p99 ms | TTFF p50 ms | stalls | errors | disconnects | KiB/conn | server rq-wait % | loader CPU % | loader rq-wait % | load1 |" >"$OUT/runs.md"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" >>"$OUT/runs.md"
    }
    declare -A files=()
    for rep in $(seq "$REPS"); do
        for server in $SERVERS; do
            json=$OUT/$slug.$server.$rep.json
            log "$case: $server run $rep/$REPS"
            start_server "$server"
            local extra=()
            mapfile -t extra < <(variant_args "$server" "$stream")
            if run_load "$json" "$stream" "$@" "${extra[@]}"; then
                files[$server]="${files[$server]:-} $json"
                raw_row "$OUT/runs.md" "$case" "$server" "$rep" "$json"
            else
                log "$case: rtmp-load failed against $server (see $json.stderr)"
                echo "| $case | $server | $rep | rtmp-load failed: $(tail -1 "$json.stderr") |" >>"$OUT/runs.md"
            fi
            stop_server
        done
    done
    for server in $SERVERS; do
        if [ -n "${files[$server]:-}" ]; then
            # shellcheck disable=SC2086
            "$SUMMARY_ROW" "$table" "$case" "$server" ${files[$server]}
        else
            echo "| $case | $server | 0 | every run failed |" >>"$table"
        fi
    done
    local a b ratios=$RATIOS pair
    if [ -z "$ratios" ]; then
        read -r a b _ <<<"$SERVERS" || true
        [ -z "${b:-}" ] || ratios="$a/$b"
    fi
    [ "$ratios" != none ] || ratios=""
    for pair in $ratios; do
        a=${pair%%/*} b=${pair#*/}
        if [ -n "${files[$a]:-}" ] && [ -n "${files[$b]:-}" ]; then
            "$RATIO_ROW" "$table" "$case" "$a/$b" "${files[$a]}" "${files[$b]}"
        fi
    done
}

# HTTP delivery (HLS) tables. The figures come from the measurement window: req/s are window
# responses over measured_s, GB served is window.hls_bytes, CPU-s/GB is the server's window CPU
# seconds over those bytes (server.cpu_s_per_gb counts player bytes only, none here). A latency
# percentile is "-" when the histogram is empty (nginx playlists have no PROGRAM-DATE-TIME, so
# publish->playable is not measured against nginx).
JQ_HLS_DEFS='
def rate(f): if .measured_s > 0 then f / .measured_s else null end;
def gb: .window.hls_bytes / 1e9;
def cpugb: if .server == null or .window.hls_bytes == 0 then null else .server.cpu_seconds / gb end;
def p50(h): if h.count > 0 then h.p50 else null end;
def p99(h): if h.count > 0 then h.p99 else null end;
def pp(h): "\(n(med(p50(h)); 10)) / \(n(med(p99(h)); 10))";
'

# hls_table_header FILE: starts a table of plain-HLS request throughput medians.
hls_table_header() {
    cat >>"$1" <<'MD'
| case | server | runs | pollers | playlist req/s | segment req/s | GB served | Mbit/s served | server CPU % | CPU-s/GB served | playlist p50 / p99 ms | segment p50 / p99 ms | seg pub->playable p50 / p99 ms | errors+disc Σ | server rq-wait % | loader CPU % | load1 |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
MD
}

# llhls_table_header FILE: starts a table of LL-HLS latency medians.
llhls_table_header() {
    cat >>"$1" <<'MD'
| case | server | runs | pollers | part ready p50 / p99 ms | pub->playable p50 / p99 ms | part req p50 / p99 ms | playlist (blocking) p50 / p99 ms | part req/s | playlist req/s | server CPU % | CPU-s/GB served | negative Σ | errors+disc Σ | loader CPU % | load1 |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
MD
}

# _jq_row ROW FILE CASE SERVER JSON...: appends the markdown row the jq string ROW makes from
# $r (the runs' reports), $c, $s and $load1 (median 1-minute load average).
_jq_row() {
    local row=$1 file=$2 case=$3 server=$4
    shift 4
    local loads
    loads=$(for j in "$@"; do cat "$j.load" 2>/dev/null || echo null; done | jq -s -c .)
    jq -rn --arg c "$case" --arg s "$server" --argjson loads "$loads" "$JQ_DEFS$JQ_HLS_DEFS"'
        [ inputs ] | . as $r |
        ($loads | sort | .[length / 2 | floor]) as $load1 | $r | '"$row" "$@" >>"$file"
}

# hls_row FILE CASE SERVER JSON...: one row of plain-HLS medians over the runs' reports.
hls_row() {
    _jq_row '"| \($c) | \($s) | \($r | length) | \($r[0].scenario.hls_pollers) | \(n(med(rate(.window.hls_playlists)); 1)) | \(n(med(rate(.window.hls_segments)); 1)) | \(n(med(gb); 1000)) | \(n(med(rate(.window.hls_bytes * 8 / 1e6)); 10)) | \(n(med(.server.cpu_percent); 10)) | \(n(med(cpugb); 100)) | \(pp(.hls_playlist_ms)) | \(pp(.hls_segment_ms)) | \(pp(.hls_segment_playable_ms)) | \([ $r[] | .counters.errors + .counters.disconnects ] | add) | \(n(med(.server.runqueue_wait_percent); 1)) | \(n(med(.loader.cpu_percent_avg); 1)) | \($load1) |"' "$@"
}

# llhls_row FILE CASE SERVER JSON...: one row of LL-HLS medians over the runs' reports.
llhls_row() {
    _jq_row '"| \($c) | \($s) | \($r | length) | \($r[0].scenario.hls_pollers) | \(pp(.hls_part_ready_ms)) | \(pp(.hls_part_playable_ms)) | \(pp(.hls_part_ms)) | \(pp(.hls_playlist_ms)) | \(n(med(rate(.window.hls_parts)); 1)) | \(n(med(rate(.window.hls_playlists)); 1)) | \(n(med(.server.cpu_percent); 10)) | \(n(med(cpugb); 100)) | \([ $r[].counters.hls_negative_latencies ] | add) | \([ $r[] | .counters.errors + .counters.disconnects ] | add) | \(n(med(.loader.cpu_percent_avg); 1)) | \($load1) |"' "$@"
}

# hls_ratio_row FILE CASE LABEL A_JSONS B_JSONS: plain-HLS ratios of the medians of A over B.
hls_ratio_row() {
    local file=$1 case=$2 label=$3 a=$4 b=$5
    local ja jb
    # shellcheck disable=SC2086
    ja=$(jq -s -c . $a)
    # shellcheck disable=SC2086
    jb=$(jq -s -c . $b)
    jq -rn --arg c "$case" --arg l "$label" --argjson a "$ja" --argjson b "$jb" "$JQ_DEFS$JQ_HLS_DEFS"'
        def rr(f): ($a | med(f)) as $x | ($b | med(f)) as $y |
            if $x == null or $y == null or $y == 0 then "-" else ($x / $y * 100 | round / 100 | tostring) + "×" end;
        "| \($c) | **\($l)** | | | \(rr(rate(.window.hls_playlists))) | \(rr(rate(.window.hls_segments))) | \(rr(gb)) | \(rr(rate(.window.hls_bytes))) | \(rr(.server.cpu_percent)) | **\(rr(cpugb))** | \(rr(p50(.hls_playlist_ms))) / \(rr(p99(.hls_playlist_ms))) | \(rr(p50(.hls_segment_ms))) / \(rr(p99(.hls_segment_ms))) | | | | | |"
    ' >>"$file"
}
