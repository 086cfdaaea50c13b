#!/usr/bin/env bash
# (d) Churn: M players (default 1000) on one stream, CHURN players leaving and joining per
# second (default 200). Watch connect-to-play and time to first frame in the JSON reports.
. "$(dirname "$0")/lib.sh"
M=${M:-1000}
CHURN=${CHURN:-200}
KBIT=${KBIT:-600}
bench_setup
table=$OUT/d_churn.md
echo "## (d) $M players, churn $CHURN/s (${KBIT} kbit/s)" >"$table"
table_header "$table"
compare "churn $CHURN/s" "$table" churn --flv "$(make_media "$KBIT")" --players "$M" --churn "$CHURN"
{
    echo
    echo "| server | connect-to-play p50 / p99 ms | first frame p50 / p99 ms | first frame keyframe / not |"
    echo "|---|---:|---:|---:|"
    for s in $SERVERS; do
        f=$OUT/churn_${CHURN}_s.$s.json
        [ -s "$f" ] && jq -r --arg s "$s" '"| \($s) | \(.connect_to_play_ms.p50) / \(.connect_to_play_ms.p99) | \(.first_frame_ms.p50) / \(.first_frame_ms.p99) | \(.counters.first_frame_keyframe) / \(.counters.first_frame_not_keyframe) |"' "$f"
    done
} >>"$table"
cat "$table"
