#!/usr/bin/env bash
# (f) rtmp-edge with workers.max_write_delay_ms = MS (default 20) vs its default at one
# stream to M players (default 500 at 2.5 Mbit/s): CPU against latency. Ratio row: MS / default.
. "$(dirname "$0")/lib.sh"
MS=${MS:-20}
M=${M:-500}
KBIT=${KBIT:-2500}
SERVERS="edge-c$MS edge"
bench_setup
table=$OUT/f_coalesce.md
echo "## (f) rtmp-edge max_write_delay_ms = $MS vs the default, ${KBIT}k x $M (medians of $REPS runs)" >"$table"
table_header "$table"
compare "coalesce ${KBIT}k x $M" "$table" coalesce --flv "$(make_media "$KBIT")" --players "$M"
cat "$table"
