#!/usr/bin/env bash
# Runs every benchmark scenario into one results directory and concatenates the tables.
# OUT=target/bench/run1 DURATION=15 tools/bench/all.sh
set -euo pipefail
here=$(dirname "$0")
export OUT=${OUT:-$(cd "$here/../.." && pwd)/target/bench/$(date +%Y%m%d-%H%M%S)}
for s in a_fanout b_many_streams c_ingest d_churn e_workers f_coalesce g_http; do
    "$here/$s.sh"
    export SKIP_BUILD=1
done
cat "$OUT"/*.md >"$OUT/RESULTS.md"
echo "bench: results in $OUT/RESULTS.md" >&2
