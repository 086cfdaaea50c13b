#!/usr/bin/env bash
# (d) Churn: M players (default 1000) on one stream, CHURN players leaving and joining per
# second (default 200); then a setup-rate case: SETUP_M players opened at SETUP_RAMP per second.
# The second table gives connect-to-play and time to first frame: over the whole run (the
# ramp's players included) and for the joins alone (players opened in the measurement window,
# i.e. the churn's; the setup case has none). SETUP_M=0 skips the setup-rate case.
. "$(dirname "$0")/lib.sh"
M=${M:-1000}
CHURN=${CHURN:-200}
KBIT=${KBIT:-600}
SETUP_M=${SETUP_M:-3000}
SETUP_RAMP=${SETUP_RAMP:-4000}
bench_setup
table=$OUT/d_churn.md
flv=$(make_media "$KBIT")
echo "## (d) $M players, churn $CHURN/s; $SETUP_M players opened at $SETUP_RAMP/s (${KBIT} kbit/s, medians of $REPS runs)" >"$table"
table_header "$table"
compare "churn $CHURN/s" "$table" churn --flv "$flv" --players "$M" --churn "$CHURN"
[ "$SETUP_M" = 0 ] || RAMP=$SETUP_RAMP compare "setup ${SETUP_RAMP}/s" "$table" setup --flv "$flv" --players "$SETUP_M"
{
    echo
    echo "| case | server | connect-to-play p50 / p99 / max ms | first frame p50 / p99 / max ms | joins: connect-to-play p50 / p99 ms | joins: first frame p50 / p99 / max ms | first frame keyframe / not | churn left / joined |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for c in "churn $CHURN/s" "setup ${SETUP_RAMP}/s"; do
        slug=$(printf '%s' "$c" | tr -c 'A-Za-z0-9._-' '_')
        for s in $SERVERS; do
            ls "$OUT/$slug.$s".*.json >/dev/null 2>&1 || continue
            jq -rs --arg c "$c" --arg s "$s" "$JQ_DEFS"'
                . as $r |
                "| \($c) | \($s) | \(n(med(.connect_to_play_ms.p50); 10)) / \(n(med(.connect_to_play_ms.p99); 10)) / \(n(med(.connect_to_play_ms.max); 10)) | \(n(med(.first_frame_ms.p50); 10)) / \(n(med(.first_frame_ms.p99); 10)) / \(n(med(.first_frame_ms.max); 10)) | \(n(med(.join_connect_to_play_ms.p50); 10)) / \(n(med(.join_connect_to_play_ms.p99); 10)) | \(n(med(.join_first_frame_ms.p50); 10)) / \(n(med(.join_first_frame_ms.p99); 10)) / \(n(med(.join_first_frame_ms.max); 10)) | \(n(med(.counters.first_frame_keyframe); 1)) / \(n(med(.counters.first_frame_not_keyframe); 1)) | \(n(med(.counters.churn_left); 1)) / \(n(med(.counters.churn_joined); 1)) |"
            ' "$OUT/$slug.$s".*.json
        done
    done
} >>"$table"
cat "$table"
