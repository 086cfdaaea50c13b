#!/usr/bin/env bash
# (i) What Prometheus scrapes cost the worker: one stream to M players at KBIT kbit/s on one
# worker (core SERVER_CORES), /metrics scraped RATES times per second (0 = never) with
# `admin.stream_metrics = true` (the worst case: every scrape asks each worker for a snapshot
# of its streams and clients), runs alternating rate by rate, REPS runs per rate.
#
# The worker thread's CPU time (utime + stime of the thread named worker-0, from
# /proc/PID/task) and the admin thread's are read at the end of each run; the bytes the server
# sent come from its own rtmp_edge_sent_bytes_total (one scrape after the load stopped), so the
# figure is worker CPU-seconds per GB sent over the whole run (ramp included, the same for every
# rate). A scrape's cost per second at rate 1 is the slope against the rate (the high rates
# amplify it above the run-to-run noise), as a share of the worker's CPU at rate 0.
#
#   M=2000 KBIT=2500 RATES="0 1 20 100" REPS=3 tools/bench/i_scrape.sh
. "$(dirname "$0")/lib.sh"
M=${M:-2000}
KBIT=${KBIT:-2500}
RATES=${RATES:-"0 1 20 100"}
ADMIN_PORT=${ADMIN_PORT:-19390}
bench_setup
table=$OUT/i_scrape.md
runs=$OUT/i_scrape_runs.md

# thread_cpu PID NAME: CPU seconds (user + system) of PID's thread called NAME.
thread_cpu() {
    local pid=$1 name=$2 t ticks=0
    for t in /proc/"$pid"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null)" = "$name" ]; then
            ticks=$(awk '{ print $14 + $15 }' "$t/stat")
        fi
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

# scraper RATE: scrapes /metrics RATE times a second until killed (pinned to LOAD_CORE).
scraper() {
    # shellcheck disable=SC2046
    $(prio) taskset -c "$LOAD_CORE" python3 - "$1" "$ADMIN_PORT" <<'PY' &
import socket, sys, time
rate, port = float(sys.argv[1]), int(sys.argv[2])
period, next_at = 1.0 / rate, time.monotonic()
while True:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        while s.recv(65536):
            pass
    next_at += period
    time.sleep(max(0.0, next_at - time.monotonic()))
PY
    SCRAPER_PID=$!
    STARTED_PIDS+=("$SCRAPER_PID")
}

echo "| rate /s | run | worker CPU-s | admin CPU-s | GB sent | worker CPU-s/GB | players up |" >"$runs"
echo "|---:|---:|---:|---:|---:|---:|---:|" >>"$runs"
flv=$(make_media "$KBIT")
admin="[admin]
listen = \"127.0.0.1:$ADMIN_PORT\"
stream_metrics = true"
for rep in $(seq "$REPS"); do
    for rate in $RATES; do
        log "scrape $rate/s: run $rep/$REPS"
        start_edge 1 "" "$SERVER_CORES" "" "$EDGE_BIN" "$admin"
        wait_port "$ADMIN_PORT"
        SCRAPER_PID=""
        [ "$rate" = 0 ] || scraper "$rate"
        json=$OUT/scrape.$rate.$rep.json
        run_load "$json" scrape --flv "$flv" --publishers 1 --players "$M" ||
            log "rtmp-load failed (see $json.stderr)"
        [ -z "$SCRAPER_PID" ] || stop_pid "$SCRAPER_PID"
        worker=$(thread_cpu "$SERVER_PID" worker-0)
        admin_cpu=$(thread_cpu "$SERVER_PID" admin)
        sent=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
            awk '/^rtmp_edge_sent_bytes_total/ { s += $2 } END { printf "%.4f", s / 1e9 }')
        up=$(jq -r '.connections.players_up // 0' "$json" 2>/dev/null || echo 0)
        echo "| $rate | $rep | $worker | $admin_cpu | $sent | $(awk -v w="$worker" -v g="$sent" 'BEGIN { printf "%.4f", (g > 0 ? w / g : 0) }') | $up |" >>"$runs"
        stop_server
    done
done

# Medians per rate, and the cost of one scrape a second against rate 0.
{
    echo "## (i) scrape cost: 1 stream -> $M players x ${KBIT} kbit/s, one worker on core $SERVER_CORES, /metrics with stream_metrics = true (medians of $REPS runs)"
    echo
    echo "| scrapes/s | worker CPU-s/GB (median) | worker CPU-s (median) | admin thread CPU-s (median) | worker CPU vs no scrapes |"
    echo "|---:|---:|---:|---:|---:|"
    awk -F'|' 'NR > 2 {
        gsub(/ /, "", $2); r = $2; n[r]++
        per[r, n[r]] = $7 + 0; w[r, n[r]] = $4 + 0; a[r, n[r]] = $5 + 0
        if (!(r in seen)) { seen[r] = 1; order[++k] = r }
    }
    function median(arr, r, c,   i, j, t, v) {
        for (i = 1; i <= c; i++) v[i] = arr[r, i]
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    END {
        base = median(per, order[1], n[order[1]])
        for (i = 1; i <= k; i++) {
            r = order[i]; m = median(per, r, n[r])
            printf "| %s | %.4f | %.2f | %.3f | %+.2f %% |\n", r, m, median(w, r, n[r]), median(a, r, n[r]), (m / base - 1) * 100
        }
    }' "$runs"
} >"$table"
cat "$table" "$runs"
