#!/usr/bin/env bash
# (j) Time to first frame as a joining viewer sees it: one stream with M players (default
# 1000) at KBIT (600) kbit/s held by one rtmp-load (the "bulk": publisher and players, no
# churn), while a second, light rtmp-load (the "probe", play-only, PROBE_PLAYERS players,
# default 200) makes CHURN (200) joins a second into the same stream: each leave picks one of
# its players at random, so a player lives PROBE_PLAYERS / CHURN seconds on average (1 s), and
# a join that leaves before its first frame (about 1 % of those taking 10 ms) is counted in
# the table's "no first frame" column, not in its percentiles. Both run on LOAD_CORE.
#
# Why two processes: in d_churn.sh the joiners share one event loop with the 1,000 players
# they join, so each of a setup's four round trips also waits for the load generator's own
# loop (30-40 % busy reading 600 Mbit/s); a real viewer's player does not. The probe's loop
# reads 200 players, so its connect-to-play and first-frame times are the server's and the
# network's. The bulk's report gives the fan-out latency and the server's CPU meanwhile.
#
# The probe starts once the bulk's M players and publisher are connected (ss), warms up for
# WARMUP + 1 s (so its window opens after the bulk's) and measures DURATION seconds; the bulk
# measures DURATION + 2 s, covering the probe's window with a second to spare at each end.
# The table gives the probe's joins (the churn's players: its own ramp players are not
# counted) and, beside them, what the bulk measured over its window.
. "$(dirname "$0")/lib.sh"
M=${M:-1000}
CHURN=${CHURN:-200}
KBIT=${KBIT:-600}
PROBE_PLAYERS=${PROBE_PLAYERS:-200}
# How the probe is scheduled: by default SCHED_FIFO (chrt -f 10), so it runs as soon as a
# reply arrives, as a viewer's own machine would, instead of waiting for the bulk's time slice
# on the shared core (about 15 % of a core). PROBE_SCHED="" runs it like the bulk (nice only).
PROBE_SCHED=${PROBE_SCHED-chrt -f 10}
[ -n "$PROBE_SCHED" ] || PROBE_SCHED=$(prio)
bench_setup
command -v ss >/dev/null || { log "ss is missing (apt-get install iproute2)"; exit 1; }
flv=$(make_media "$KBIT")
table=$OUT/j_first_frame.md
runs=$OUT/j_runs.md

established() {
    ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}

# probe_run SERVER REP: one bulk + probe run; reports in $OUT/j.SERVER.REP.{bulk,probe}.json.
probe_run() {
    local server=$1 rep=$2 bulk=$OUT/j.$1.$2.bulk.json probe=$OUT/j.$1.$2.probe.json
    local port bulk_pid i rc=0
    start_server "$server"
    port=${SERVER_URL_BASE#*127.0.0.1:}
    port=${port%%/*}
    # shellcheck disable=SC2046
    $(prio) taskset -c "$LOAD_CORE" "$LOAD_BIN" --url "$SERVER_URL_BASE/ttff" --ramp "$RAMP" \
        --duration $((DURATION + 2)) --warmup "$WARMUP" --server-pid "$SERVER_PID" --json -q \
        --flv "$flv" --players "$M" >"$bulk" 2>"$bulk.stderr" &
    bulk_pid=$!
    STARTED_PIDS+=("$bulk_pid")
    for i in $(seq 200); do
        [ "$(established "$port")" -ge $((M + 1)) ] && break
        sleep 0.05
    done
    if [ "$(established "$port")" -lt $((M + 1)) ]; then
        log "$server: the bulk's $M players did not connect in 10 s"
        rc=1
    else
        $PROBE_SCHED taskset -c "$LOAD_CORE" "$LOAD_BIN" --url "$SERVER_URL_BASE/ttff" --ramp "$RAMP" \
            --duration "$DURATION" --warmup $((WARMUP + 1)) --server-pid "$SERVER_PID" --json -q \
            --mode play-only --players "$PROBE_PLAYERS" --churn "$CHURN" \
            >"$probe" 2>"$probe.stderr" || rc=$?
    fi
    wait "$bulk_pid" || rc=$?
    local kept=() pid
    for pid in "${STARTED_PIDS[@]}"; do
        [ "$pid" = "$bulk_pid" ] || kept+=("$pid")
    done
    STARTED_PIDS=("${kept[@]:-}")
    stop_server
    cut -d' ' -f1 /proc/loadavg >"$probe.load"
    jq -r --arg s "$server" --arg r "$rep" --slurpfile b "$bulk" '
        "| \($s) | \($r) | \(.join_connect_to_play_ms.p50) / \(.join_connect_to_play_ms.p99) | \(.join_first_frame_ms.p50) / \(.join_first_frame_ms.p99) / \(.join_first_frame_ms.max) | \(.counters.churn_joined) / \(.counters.churn_joined - .join_first_frame_ms.count) | \($b[0].connections.players_up) | \($b[0].latency_ms.p99) | \($b[0].server.cpu_percent) |"
    ' "$probe" >>"$runs" 2>/dev/null && [ -s "$probe" ] || echo "| $server | $rep | failed (rc $rc) |" >>"$runs"
    return $rc
}

echo "| server | run | probe connect-to-play p50 / p99 ms | probe first frame p50 / p99 / max ms | joins / no first frame | bulk players up | bulk p99 ms | server CPU % |" >"$runs"
echo "|---|---:|---:|---:|---:|---:|---:|---:|" >>"$runs"
for rep in $(seq "$REPS"); do
    for server in $SERVERS; do
        log "first frame: $server run $rep/$REPS"
        probe_run "$server" "$rep" || log "first frame: $server run $rep failed (see $OUT/j.$server.$rep.*.stderr)"
    done
done

{
    echo "## (j) time to first frame: a probe making $CHURN joins/s into a stream with $M players (${KBIT} kbit/s, medians of $REPS runs)"
    echo
    echo "| server | runs | probe connect-to-play p50 / p99 ms | probe first frame p50 / p99 / max ms | keyframe first / not | joins / no first frame | bulk players up | bulk p99 ms | server CPU % |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SERVERS; do
        ls "$OUT/j.$s".*.probe.json >/dev/null 2>&1 || continue
        bulks=$(ls "$OUT/j.$s".*.bulk.json)
        # A bulk run whose report is missing or broken leaves its columns out, not the table.
        # shellcheck disable=SC2086
        bulk_reports=$(jq -s . $bulks 2>/dev/null || echo '[]')
        # shellcheck disable=SC2086
        jq -rn --arg s "$s" --argjson bulk "$bulk_reports" "$JQ_DEFS"'
            [ inputs ] | . as $r |
            "| \($s) | \($r | length) | \(n(med(.join_connect_to_play_ms.p50); 10)) / \(n(med(.join_connect_to_play_ms.p99); 10)) | \(n(med(.join_first_frame_ms.p50); 10)) / \(n(med(.join_first_frame_ms.p99); 10)) / \(n(med(.join_first_frame_ms.max); 10)) | \([ $r[].counters.first_frame_keyframe ] | add) / \([ $r[].counters.first_frame_not_keyframe ] | add) | \([ $r[].counters.churn_joined ] | add) / \([ $r[] | .counters.churn_joined - .join_first_frame_ms.count ] | add) | \($bulk | n(med(.connections.players_up); 1)) | \($bulk | n(med(.latency_ms.p99); 10)) | \($bulk | n(med(.server.cpu_percent); 10)) |"
        ' "$OUT/j.$s".*.probe.json
    done
    echo
    echo "Every run:"
    echo
    cat "$runs"
} >"$table"
cat "$table"
