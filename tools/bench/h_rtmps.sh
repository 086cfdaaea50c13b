#!/usr/bin/env bash
# (h) RTMPS vs RTMP: one stream to M players at 2.5 Mbit/s (looped FLV from make_flv.sh), the
# edge serving it over TLS (publisher and players on rtmps://, rustls with ring, a self-signed
# RSA-2048 certificate) and over plain RTMP, alternating run by run, REPS runs per point,
# medians + the edge-tls/edge ratio (CPU-s per delivered GB is the cost of encryption).
# M="1 10 100 500" tools/bench/h_rtmps.sh
SERVERS=${SERVERS:-"edge-tls edge"}
. "$(dirname "$0")/lib.sh"
M=${M:-"1 10 100 500"}
bench_setup
table=$OUT/h_rtmps.md
echo "## (h) RTMPS vs RTMP, one stream to M players (server on core $SERVER_CORES, rtmp-load on core $LOAD_CORE, ${DURATION}s measured, medians of $REPS runs)" >"$table"
table_header "$table"
flv=$(make_media 2500)
for m in $M; do
    compare "2500k x $m" "$table" rtmps --flv "$flv" --publishers 1 --players "$m"
done
cat "$table"
