#!/usr/bin/env bash
# A three-tier cluster on loopback, for a look by hand and for scale runs (docs/CLUSTER.md):
# redis-server, origins A and B, an ingest edge pushing to the origins, two play edges, each
# its own `rtmp-edge` process (release build) on free ports, stopped by PID when done.
#
#     tools/cluster.sh [up|load|single]
#
#   up      start the cluster, print its URLs, keep it up for SECONDS (default 60), stop it.
#   load    start it, publish STREAMS synthetic streams of KBIT kbit/s to the ingest edge and
#           play each with PLAYERS players on every play edge (rtmp-load: one instance per
#           play edge, on core LOAD_CORE), optionally SIGKILL the origin holding stream 0
#           after KILL_AFTER seconds; report players served, throughput, stalls, latency and
#           every process's CPU seconds per delivered GB.
#   single  the same load on one rtmp-edge process (publishers and all players on it): the
#           figure the tree is compared with.
#
# Environment: SECONDS_UP (60), STREAMS (1), PLAYERS (200, per play edge; single: twice
# that), KBIT (2500), DURATION (10, measured seconds), KILL_AFTER (unset: no kill),
# SERVER_CORES (0: the cluster's processes share it; "0,1": spread), LOAD_CORE (1),
# SKIP_BUILD=1, OUT (target/cluster). Nothing leaves 127.0.0.1.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mode=${1:-up}
SECONDS_UP=${SECONDS_UP:-60}
STREAMS=${STREAMS:-1}
PLAYERS=${PLAYERS:-200}
KBIT=${KBIT:-2500}
DURATION=${DURATION:-10}
SERVER_CORES=${SERVER_CORES:-0}
LOAD_CORE=${LOAD_CORE:-1}
OUT=${OUT:-$root/target/cluster}
EDGE=$root/target/release/rtmp-edge
LOAD=$root/target/release/rtmp-load

for tool in redis-server redis-cli jq taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server jq util-linux)" >&2; exit 1; }
done
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT"

pids=()
names=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CONFIG RTMP_PORT HTTP_PORT: one rtmp-edge, waits until it listens.
start() {
    local name=$1 config=$2 rtmp=$3 http=$4
    printf '%s' "$config" >"$OUT/$name.toml"
    taskset -c "$SERVER_CORES" "$EDGE" --config "$OUT/$name.toml" --workers 1 \
        --listen "127.0.0.1:$rtmp" --http-listen "127.0.0.1:$http" >"$OUT/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
    for _ in $(seq 100); do
        grep -qs "listening for HTTP" "$OUT/$name.log" && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$OUT/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "$name did not start" >&2
    exit 1
}

pid_of() { # pid_of NAME
    local i
    for i in "${!names[@]}"; do
        if [ "${names[$i]}" = "$1" ]; then echo "${pids[$i]}"; fi
    done
}

cpu_s() { # cpu_s PID: user + system seconds so far
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

common="[workers]
pin = false
[timeouts]
shutdown_ms = 500
[admin]
listen = \"\"
"
if [ "$mode" = single ]; then
    port=$(free_port) http=$(free_port)
    start single "$common" "$port" "$http"
    publish_url="rtmp://127.0.0.1:$port/live/s"
    play_urls=("rtmp://127.0.0.1:$port/live/s")
    players=$((PLAYERS * 2))
    tree=(single)
else
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        >"$OUT/redis.log" 2>&1 &
    pids+=($!) && names+=(redis)
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis="redis://127.0.0.1:$redis_port"
    cluster="[cluster]
directory = \"redis\"
redis_url = \"$redis\"
lease_ms = 3000
renew_ms = 500
"
    origin_urls=()
    for o in a b; do
        port=$(free_port) http=$(free_port)
        origin_urls+=("rtmp://127.0.0.1:$port")
        start "origin-$o" "$common[streams]
publish_takeover = true
$cluster
advertise = \"rtmp://127.0.0.1:$port\"
" "$port" "$http"
    done
    origins="origins = [\"${origin_urls[0]}\", \"${origin_urls[1]}\"]"
    ingest=$(free_port) http=$(free_port)
    start ingest "$common$cluster
[relay]
$origins
[[relay.push]]
app = \"*\"
url = \"origins\"
" "$ingest" "$http"
    play_urls=()
    for e in 1 2; do
        port=$(free_port) http=$(free_port)
        play_urls+=("rtmp://127.0.0.1:$port/live/s")
        start "play-$e" "$common$cluster
role = \"edge\"
advertise = \"rtmp://127.0.0.1:$port\"
advertise_http = \"http://127.0.0.1:$http\"
[relay]
$origins
" "$port" "$http"
    done
    publish_url="rtmp://127.0.0.1:$ingest/live/s"
    players=$PLAYERS
    tree=(origin-a origin-b ingest play-1 play-2)
fi

echo "publish to: $publish_url (stream names s, or s-0.. with several streams)"
for url in "${play_urls[@]}"; do echo "play from:  $url"; done
echo "logs and configs: $OUT"

if [ "$mode" = up ]; then
    sleep "$SECONDS_UP"
    exit 0
fi

declare -A cpu_before
for name in "${tree[@]}"; do cpu_before[$name]=$(cpu_s "$(pid_of "$name")"); done
loads=()
for i in "${!play_urls[@]}"; do
    args=(--url "${play_urls[$i]}" --players "$players" --ramp 1000 --json -q)
    if [ "$i" = 0 ]; then
        # The publishing instance outlives the other's measurement.
        args+=(--publish-url "$publish_url" --publishers "$STREAMS" --synthetic "${KBIT}k")
        args+=(--duration $((DURATION + ${#play_urls[@]} * 3)))
    else
        # The other play edge's players start once the stream flows.
        sleep 2
        args+=(--mode play-only --streams "$STREAMS" --duration "$DURATION")
    fi
    taskset -c "$LOAD_CORE" "$LOAD" "${args[@]}" >"$OUT/load-$i.json" 2>"$OUT/load-$i.err" &
    loads+=($!)
done
if [ -n "${KILL_AFTER:-}" ] && [ "$mode" != single ]; then
    sleep "$KILL_AFTER"
    key="rtmp-edge:stream:live/s"
    [ "$STREAMS" = 1 ] || key="rtmp-edge:stream:live/s-0"
    holder=$(redis-cli -p "$redis_port" GET "$key")
    for o in a b; do
        if [ "rtmp://127.0.0.1:$(sed -n 's/.*listening for RTMP addr=127.0.0.1:\([0-9]*\).*/\1/p' "$OUT/origin-$o.log" | head -1)" = "$holder" ]; then
            echo "SIGKILL origin-$o (holds the stream)"
            kill -KILL "$(pid_of "origin-$o")"
        fi
    done
fi
for pid in "${loads[@]}"; do wait "$pid" || true; done

gb=0
echo
echo "| play edge | players up | Mbit/s | stalls | disconnects | p50 / p99 latency ms (publishing instance) |"
echo "|---|---:|---:|---:|---:|---|"
for i in "${!play_urls[@]}"; do
    f=$OUT/load-$i.json
    jq -r --arg i "$i" '"| \($i) | \(.connections.players_up) | \(.window.throughput_mbit_s | floor) | \(.counters.stalls) | \(.counters.disconnects) | \(if $i == "0" then "\(.latency_ms.p50) / \(.latency_ms.p99)" else "-" end) |"' "$f"
    gb=$(jq -r --arg gb "$gb" '($gb | tonumber) + .counters.player_bytes / 1e9' "$f")
done
echo
echo "| process | CPU-s during the load | CPU-s per delivered GB |"
echo "|---|---:|---:|"
total=0
for name in "${tree[@]}"; do
    pid=$(pid_of "$name")
    used=$(awk -v a="$(cpu_s "$pid")" -v b="${cpu_before[$name]}" 'BEGIN { printf "%.2f", a - b }')
    total=$(awk -v t="$total" -v u="$used" 'BEGIN { printf "%.2f", t + u }')
    echo "| $name | $used | $(awk -v u="$used" -v g="$gb" 'BEGIN { printf "%.3f", (g > 0 ? u / g : 0) }') |"
done
echo "| **all** | **$total** | **$(awk -v u="$total" -v g="$gb" 'BEGIN { printf "%.3f", (g > 0 ? u / g : 0) }')** |"
echo
echo "delivered to players: $gb GB"
