#!/usr/bin/env bash
# (e) rtmp-edge with 1 vs 2 workers under the same load (one stream to M players).
# Needs 3+ cores to be meaningful: 2 for the server, 1 for rtmp-load. Set EDGE2_CORES and
# LOAD_CORE to fit the machine (defaults: 0,1 and 2).
. "$(dirname "$0")/lib.sh"
M=${M:-2000}
KBIT=${KBIT:-600}
EDGE2_CORES=${EDGE2_CORES:-0,1}
SERVERS=edge
if [ "$(nproc)" -lt 3 ]; then
    log "WARNING: $(nproc) cores: the 2-worker run shares a core with rtmp-load"
    LOAD_CORE=${LOAD_CORE_OVERRIDE:-1}
else
    LOAD_CORE=${LOAD_CORE_OVERRIDE:-2}
fi
bench_setup
table=$OUT/e_workers.md
flv=$(make_media "$KBIT")
echo "## (e) rtmp-edge 1 vs 2 workers, $M players (${KBIT} kbit/s)" >"$table"
table_header "$table"
for workers in 1 2; do
    if [ "$workers" = 2 ]; then SERVER_CORES=$EDGE2_CORES; fi
    json=$OUT/workers_$workers.edge.json
    start_server edge "$workers"
    run_load "$json" workers --flv "$flv" --players "$M" && table_row "$table" "$workers worker(s)" edge "$json"
    stop_server
done
cat "$table"
