#!/usr/bin/env bash
# (a) One stream to M players at 2.5 Mbit/s and 600 kbit/s (looped FLV from make_flv.sh),
# rtmp-edge and nginx-rtmp alternating run by run, REPS runs per point, medians + edge/nginx.
# M_2500="100 500 1000 2000 4000" M_600="500 2000 5000 10000" tools/bench/a_fanout.sh
. "$(dirname "$0")/lib.sh"
M_2500=${M_2500:-"100 500 1000 2000 4000"}
M_600=${M_600:-"500 2000 5000 10000"}
bench_setup
table=$OUT/a_fanout.md
echo "## (a) one stream to M players (server on core $SERVER_CORES, rtmp-load on core $LOAD_CORE, ${DURATION}s measured, medians of $REPS runs)" >"$table"
table_header "$table"
for kbit in 2500 600; do
    flv=$(make_media "$kbit")
    list=M_$kbit
    for m in ${!list}; do
        compare "${kbit}k x $m" "$table" fanout --flv "$flv" --publishers 1 --players "$m"
    done
done
cat "$table"
