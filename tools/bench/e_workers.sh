#!/usr/bin/env bash
# (e) rtmp-edge with 2 workers (pinned over EDGE2_CORES) vs 1 worker (SERVER_CORES) under the
# same load (one stream to M players), alternating run by run; the ratio row is 2w / 1w.
# Needs 3+ cores to be meaningful: 2 for the server, 1 for rtmp-load. On a 2-core machine the
# second worker shares core LOAD_CORE with rtmp-load, so this measures contention, not scaling.
. "$(dirname "$0")/lib.sh"
M=${M:-2000}
KBIT=${KBIT:-2500}
if [ "$(nproc)" -lt 3 ]; then
    log "WARNING: $(nproc) cores: the 2-worker run shares a core with rtmp-load"
    EDGE2_CORES=${EDGE2_CORES:-0,1}
else
    LOAD_CORE=${LOAD_CORE_OVERRIDE:-2}
fi
SERVERS="edge-w2 edge"
bench_setup
table=$OUT/e_workers.md
echo "## (e) rtmp-edge 2 workers (cores $EDGE2_CORES) vs 1 worker (core $SERVER_CORES), rtmp-load on core $LOAD_CORE, $M players (${KBIT} kbit/s, medians of $REPS runs)" >"$table"
table_header "$table"
compare "workers ${KBIT}k x $M" "$table" workers --flv "$(make_media "$KBIT")" --players "$M"
cat "$table"
