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
# Server variants (words of SERVERS): edge (1 worker), nginx (1 worker process),
#   edge-w<N> (N workers pinned over EDGE2_CORES), edge-c<MS> (workers.write_coalesce_ms = MS).
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVER_CORES=${SERVER_CORES:-0}
LOAD_CORE=${LOAD_CORE:-1}
EDGE2_CORES=${EDGE2_CORES:-0,1}
EDGE_PORT=${EDGE_PORT:-19360}
NGINX_PORT=${NGINX_PORT:-19361}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
RAMP=${RAMP:-2000}
REPS=${REPS:-3}
NICE=${NICE--10}
SERVERS=${SERVERS:-"edge nginx"}
OUT=${OUT:-$BENCH_ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
EDGE_BIN=${EDGE_BIN:-$BENCH_ROOT/target/release/rtmp-edge}
LOAD_BIN=${LOAD_BIN:-$BENCH_ROOT/target/release/rtmp-load}
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
NGINX_BIN=/usr/sbin/nginx

STARTED_PIDS=()
SERVER_PID=""

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
    # shellcheck disable=SC2046
    $(prio) taskset -c "$SERVER_CORES" "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" \
        >"$dir/logs/stdout.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_port "$NGINX_PORT"
    SERVER_URL_BASE="rtmp://127.0.0.1:$NGINX_PORT/live"
}

# start_edge [WORKERS] [COALESCE_MS] [CORES]: rtmp-edge pinned to CORES (default SERVER_CORES).
start_edge() {
    local workers=${1:-1} coalesce=${2:-0} cores=${3:-$SERVER_CORES} dir=$OUT/edge
    mkdir -p "$dir"
    cat >"$dir/edge.toml" <<CONF
[rtmp]
listen = ["127.0.0.1:$EDGE_PORT"]

[workers]
count = $workers
max_connections = 65536
max_connections_per_ip = 0
write_coalesce_ms = $coalesce
CONF
    # shellcheck disable=SC2046
    $(prio) taskset -c "$cores" "$EDGE_BIN" --config "$dir/edge.toml" >>"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_port "$EDGE_PORT"
    SERVER_URL_BASE="rtmp://127.0.0.1:$EDGE_PORT/live"
}

# start_server VARIANT: edge | nginx | edge-w<N> | edge-c<MS>
start_server() {
    case $1 in
    edge) start_edge 1 ;;
    edge-w*) start_edge "${1#edge-w}" 0 "$EDGE2_CORES" ;;
    edge-c*) start_edge 1 "${1#edge-c}" ;;
    nginx) start_nginx ;;
    *) log "unknown server $1"; return 1 ;;
    esac
}

# stop_server: stops SERVER_PID; complains when it died on its own during the run.
stop_server() {
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "WARNING: server pid $SERVER_PID was not running at the end of the run"
    fi
    stop_pid "$SERVER_PID"
    local kept=() pid
    for pid in "${STARTED_PIDS[@]}"; do [ "$pid" != "$SERVER_PID" ] && kept+=("$pid"); done
    STARTED_PIDS=("${kept[@]:-}")
    SERVER_PID=""
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
            if run_load "$json" "$stream" "$@"; then
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
            summary_row "$table" "$case" "$server" ${files[$server]}
        else
            echo "| $case | $server | 0 | every run failed |" >>"$table"
        fi
    done
    local a b
    read -r a b _ <<<"$SERVERS" || true
    if [ -n "${b:-}" ] && [ -n "${files[$a]:-}" ] && [ -n "${files[$b]:-}" ]; then
        ratio_row "$table" "$case" "$a/$b" "${files[$a]}" "${files[$b]}"
    fi
}
