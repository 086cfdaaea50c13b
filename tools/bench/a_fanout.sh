#!/usr/bin/env bash
# (a) One stream to M players, at 600 kbit/s and 2.5 Mbit/s (looped FLV from make_flv.sh).
# M_LIST="100 500 1000 2000" BITRATES="600 2500" tools/bench/a_fanout.sh
. "$(dirname "$0")/lib.sh"
M_LIST=${M_LIST:-"100 500 1000 2000"}
BITRATES=${BITRATES:-"600 2500"}
bench_setup
table=$OUT/a_fanout.md
echo "## (a) one stream to M players (server on core $SERVER_CORES, rtmp-load on core $LOAD_CORE, ${DURATION}s each)" >"$table"
table_header "$table"
for kbit in $BITRATES; do
    flv=$(make_media "$kbit")
    for m in $M_LIST; do
        compare "${kbit}k x $m" "$table" fanout --flv "$flv" --publishers 1 --players "$m"
    done
done
cat "$table"
