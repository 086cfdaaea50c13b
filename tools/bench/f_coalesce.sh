#!/usr/bin/env bash
# (f) rtmp-edge with workers.write_coalesce_ms = MS (default 20) vs the default (0) at one
# stream to M players (default 500 at 2.5 Mbit/s): CPU against latency. Ratio row: coalesced / 0.
. "$(dirname "$0")/lib.sh"
MS=${MS:-20}
M=${M:-500}
KBIT=${KBIT:-2500}
SERVERS="edge-c$MS edge"
bench_setup
table=$OUT/f_coalesce.md
echo "## (f) rtmp-edge write_coalesce_ms = $MS vs 0, ${KBIT}k x $M (medians of $REPS runs)" >"$table"
table_header "$table"
compare "coalesce ${KBIT}k x $M" "$table" coalesce --flv "$(make_media "$KBIT")" --players "$M"
cat "$table"
