#!/usr/bin/env bash
# (h) Latency-aware batching: rtmp-edge at each workers.max_write_delay_ms of DELAYS (default
# 0 2 5 20 100 350) and nginx-rtmp, one stream to M players for each M of PLAYERS (default
# 500 2000) at KBIT (2500) kbit/s, alternating run by run: CPU-s/GB against p99 latency, the
# curve an operator picks a budget from. Ratio rows: each budget over nginx. ALSO: more server
# variants to run beside them (e.g. "edge", the defaults), also compared with nginx.
. "$(dirname "$0")/lib.sh"
DELAYS=${DELAYS:-"0 2 5 20 100 350"}
PLAYERS=${PLAYERS:-"500 2000"}
KBIT=${KBIT:-2500}
SERVERS="nginx"
RATIOS=""
for d in $DELAYS; do
    SERVERS="$SERVERS edge-c$d"
    RATIOS="$RATIOS edge-c$d/nginx"
done
for s in ${ALSO:-}; do
    SERVERS="$SERVERS $s"
    RATIOS="$RATIOS $s/nginx"
done
bench_setup
table=$OUT/h_write_delay.md
echo "## (h) rtmp-edge max_write_delay_ms = {$DELAYS} vs nginx-rtmp, ${KBIT}k (medians of $REPS runs)" >"$table"
table_header "$table"
for m in $PLAYERS; do
    compare "delay ${KBIT}k x $m" "$table" delay --flv "$(make_media "$KBIT")" --players "$m"
done
cat "$table"
