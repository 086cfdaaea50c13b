#!/usr/bin/env bash
# (c) Ingest only: P publishers (default 500), no players. The server's cost per publisher is
# in its CPU % and KiB/conn columns (nothing is delivered, so per-GB columns stay empty).
. "$(dirname "$0")/lib.sh"
P=${P:-500}
KBIT=${KBIT:-600}
bench_setup
table=$OUT/c_ingest.md
echo "## (c) $P publishers, ingest only (${KBIT} kbit/s)" >"$table"
table_header "$table"
compare "ingest $P" "$table" ingest --flv "$(make_media "$KBIT")" --mode publish-only --publishers "$P"
cat "$table"
