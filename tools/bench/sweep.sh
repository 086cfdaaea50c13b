#!/usr/bin/env bash
# CPU-vs-players sweep on one server with plots: rtmp-load --sweep, then SVGs in OUT/plots-SERVER.
# SERVER=nginx M_LIST=100,500,1000,2000 tools/bench/sweep.sh
. "$(dirname "$0")/lib.sh"
SERVER=${SERVER:-nginx}
M_LIST=${M_LIST:-100,500,1000,2000}
KBIT=${KBIT:-600}
SERVERS=$SERVER
bench_setup
flv=$(make_media "$KBIT")
start_server "$SERVER"
run_load "$OUT/sweep.$SERVER.json" sweep --flv "$flv" --sweep "$M_LIST" --plot "$OUT/plots-$SERVER" -q
stop_server
jq -r '.[] | "\(.connections.players_target) players: server \(.server.cpu_percent | . * 10 | round / 10)% CPU, p99 \(.latency_ms.p99) ms"' "$OUT/sweep.$SERVER.json"
log "plots in $OUT/plots-$SERVER"
