#!/usr/bin/env bash
# (b) P publishers x M players each (default 50 x 10) at 600 kbit/s.
. "$(dirname "$0")/lib.sh"
P=${P:-50}
M=${M:-10}
KBIT=${KBIT:-600}
bench_setup
table=$OUT/b_many_streams.md
echo "## (b) $P publishers x $M players (${KBIT} kbit/s, medians of $REPS runs)" >"$table"
table_header "$table"
compare "${P}x${M}" "$table" multi --flv "$(make_media "$KBIT")" --publishers "$P" --players "$M"
cat "$table"
