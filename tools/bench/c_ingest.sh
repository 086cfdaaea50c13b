#!/usr/bin/env bash
# (c) Ingest: publishers and no players. CASES is a list of PUBLISHERSxKBIT
# (default "200x2500 500x600"). Nothing is delivered, so the per-delivered-GB columns stay
# empty; the second table gives CPU-seconds per ingested GB, counting publishers_up x the
# source bitrate (rtmp-load paces publishers in real time) over the measured window.
# PUBLISHERSxKBITxPLAYERS (e.g. 200x2500x1) gives each stream that many RTMP players: watched
# streams, whose publishers are read on arrival (rtmp-edge reads unwatched ones by the clock,
# workers.unwatched_read_ms); its CPU then includes delivering to the players.
. "$(dirname "$0")/lib.sh"
CASES=${CASES:-"200x2500 500x600"}
bench_setup
table=$OUT/c_ingest.md
echo "## (c) ingest only (medians of $REPS runs)" >"$table"
table_header "$table"
# case_fields CASE: sets p (publishers), kbit, players (0: publish only) and name.
case_fields() {
    IFS=x read -r p kbit players <<<"$1"
    players=${players:-0}
    name="ingest ${p}x${kbit}k"
    [ "$players" = 0 ] || name="$name x${players} players"
}
for c in $CASES; do
    case_fields "$c"
    if [ "$players" = 0 ]; then
        compare "$name" "$table" ingest --flv "$(make_media "$kbit")" --mode publish-only --publishers "$p"
    else
        compare "$name" "$table" ingest --flv "$(make_media "$kbit")" --publishers "$p" --players "$players"
    fi
done
{
    echo
    echo "| case | server | publishers up | ingest Mbit/s | server CPU % | CPU-s per ingested GB | µs per ingested message | KiB/conn |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for c in $CASES; do
        case_fields "$c"
        for s in $SERVERS; do
            slug=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')
            ls "$OUT/$slug.$s".*.json >/dev/null 2>&1 || continue
            jq -rs --arg c "$name" --arg s "$s" "$JQ_DEFS"'
                . as $r |
                def kbit: (.source | capture("\\((?<k>[0-9.]+) kbit/s\\)").k | tonumber);
                def gb: .connections.publishers_up * kbit * 1000 / 8 * .measured_s / 1e9;
                "| \($c) | \($s) | \(n(med(.connections.publishers_up); 1)) | \(n(med(.connections.publishers_up * kbit / 1000); 10)) | \(n(med(.server.cpu_percent); 10)) | \(n(med(.server.cpu_seconds / gb); 100)) | \(n(med(.server.cpu_seconds * 1e6 / (.counters.publisher_messages * .measured_s / .elapsed_s)); 100)) | \(n(med(.server.rss_per_conn_kb); 10)) |"
            ' "$OUT/$slug.$s".*.json
        done
    done
    echo
    echo "µs per ingested message assumes publisher messages spread evenly over the whole run (publishers ramp up first), so it is approximate."
} >>"$table"
cat "$table"
