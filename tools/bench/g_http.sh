#!/usr/bin/env bash
# (g) HTTP delivery at 2.5 Mbit/s (looped FLV from make_flv.sh, 2 s GOP), one publisher,
# server pinned to SERVER_CORES, rtmp-load to LOAD_CORE, REPS runs per point, servers
# alternating run by run, medians + ratios:
#   (g1) HTTP-FLV viewers per core: edge HTTP-FLV vs edge RTMP vs nginx-rtmp RTMP players,
#        M_FLV players (ratio rows G1_RATIOS).
#   (g2) plain-HLS request throughput: N_HLS pollers (--players 0 --hls-pollers N), edge
#        (hls_part_ms = 0) vs nginx-rtmp HLS (2 s fragments) served by nginx http.
#   (g3) LL-HLS latency: N_LL pollers on the edge with 2000/500 ms and 1000/200 ms
#        segments/parts.
# WARMUP defaults to 6 s: on-demand packaging answers the first playlist after the first
# complete segment (~one 2 s GOP), nginx writes its playlist when its first fragment closes.
# The edge's HLS variants run with DASH off (nginx does HLS only here). nginx playlists carry
# no EXT-X-PROGRAM-DATE-TIME: publish->playable is only measured on the edge.
# M_FLV="500 1000 2000 4000" N_HLS="500 2000 5000" N_LL="100 1000" tools/bench/g_http.sh
export WARMUP=${WARMUP:-6}
. "$(dirname "$0")/lib.sh"
M_FLV=${M_FLV:-"500 1000 2000 4000"}
N_HLS=${N_HLS:-"500 2000 5000"}
N_LL=${N_LL:-"100 1000"}
G1_SERVERS=${G1_SERVERS:-"edge-flv edge nginx"}
G1_RATIOS=${G1_RATIOS:-"edge-flv/nginx edge-flv/edge"}
G2_SERVERS=${G2_SERVERS:-"edge-hls nginx-hls"}
G3_SERVERS=${G3_SERVERS:-"edge-llhls edge-llhls200"}
bench_setup
flv=$(make_media 2500)
where="server on core $SERVER_CORES, rtmp-load on core $LOAD_CORE, ${DURATION}s measured after ${WARMUP}s warm-up, medians of $REPS runs"

t1=$OUT/g1_http_flv.md
echo "## (g1) one 2.5 Mbit/s stream to M viewers: edge HTTP-FLV vs edge RTMP vs nginx-rtmp RTMP ($where)" >"$t1"
table_header "$t1"
for m in $M_FLV; do
    SERVERS=$G1_SERVERS RATIOS=$G1_RATIOS \
        compare "2500k x $m" "$t1" flv --flv "$flv" --publishers 1 --players "$m"
done

t2=$OUT/g2_hls.md
{
    echo "## (g2) plain HLS: N pollers of one 2.5 Mbit/s stream (2 s segments), edge (hls_part_ms = 0, on-demand) vs nginx-rtmp HLS served by nginx http ($where)"
    echo "Pollers reload the playlist every half target duration (1 s) and GET each new segment once. CPU-s/GB served = server CPU seconds in the window / HLS bytes served in it."
    echo
} >"$t2"
hls_table_header "$t2"
for n in $N_HLS; do
    SERVERS=$G2_SERVERS SUMMARY_ROW=hls_row RATIO_ROW=hls_ratio_row \
        compare "HLS x $n" "$t2" hls --flv "$flv" --publishers 1 --players 0 --hls-pollers "$n"
done

t3=$OUT/g3_llhls.md
{
    echo "## (g3) LL-HLS latency: N pollers of one 2.5 Mbit/s stream, edge-llhls = 2000 ms segments / 500 ms parts, edge-llhls200 = 1000 / 200 ($where)"
    echo "part ready = blocking playlist answer listing a part − the part's media end; pub->playable = part bytes received − part media start (PDT-derived, same clock)."
    echo
} >"$t3"
llhls_table_header "$t3"
for n in $N_LL; do
    SERVERS=$G3_SERVERS SUMMARY_ROW=llhls_row RATIOS=none \
        compare "LL-HLS x $n" "$t3" llhls --flv "$flv" --publishers 1 --players 0 --hls-pollers "$n"
done
cat "$t1" "$t2" "$t3"
