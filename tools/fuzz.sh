#!/usr/bin/env bash
# Runs each fuzz target for a while and fails if any of them finds a crash.
#
#     tools/fuzz.sh [SECONDS_PER_TARGET (default 20)] [TARGET...]   (default: every target)
#
# Each target starts from a fresh temporary corpus seeded with fuzz/seeds/TARGET/. With
# `cargo fuzz` installed it runs `cargo fuzz run TARGET CORPUS -- -max_total_time=N` (on a
# stable toolchain with RUSTC_BOOTSTRAP=1, as cargo-fuzz's sanitizer flags are unstable).
# Without it (CI: cargo-fuzz takes minutes to install) the targets are built directly with the
# instrumentation cargo-fuzz uses (SanitizerCoverage, `--cfg fuzzing`, debug assertions and
# overflow checks, release, no sanitizer) and the libFuzzer binaries are run the same way.
#
# A crash leaves its input in fuzz/artifacts/TARGET/ and is printed as hex; reproduce it with
#     cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...      (or run the built binary on it)
# Environment: FUZZ_TARGET_DIR (default $CARGO_TARGET_DIR/fuzz or fuzz/target),
# FUZZ_DIRECT=1 to skip cargo-fuzz even when installed, FUZZ_CORPUS=DIR to keep each
# target's corpus in DIR/TARGET (seeded when empty) so a campaign goes on where the last run
# stopped, and FUZZ_CPU_SECONDS=N to stop a target (SIGINT, final stats kept) once it has
# used N CPU-seconds, for long runs quoted in CPU time on a shared machine:
#     FUZZ_DIRECT=1 FUZZ_CPU_SECONDS=1800 FUZZ_CORPUS=fuzz/corpus tools/fuzz.sh 36000 media
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

seconds="${1:-20}"
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    target_dir="$FUZZ_TARGET_DIR"
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target_dir="$CARGO_TARGET_DIR/fuzz"
else
    target_dir="$root/fuzz/target"
fi
triple="x86_64-unknown-linux-gnu"
rustc -vV | grep -q nightly || export RUSTC_BOOTSTRAP=1

use_cargo_fuzz=0
if [ "${FUZZ_DIRECT:-0}" != 1 ] && cargo fuzz --version >/dev/null 2>&1; then
    use_cargo_fuzz=1
fi

build_start=$SECONDS
if [ $use_cargo_fuzz = 1 ]; then
    echo "fuzz: building ${targets[*]} with cargo fuzz"
    for t in "${targets[@]}"; do
        cargo fuzz build --target-dir "$target_dir" "$t"
    done
else
    echo "fuzz: cargo-fuzz not installed; building ${targets[*]} with its instrumentation flags"
    flags=(
        -Cpasses=sancov-module
        -Cllvm-args=-sanitizer-coverage-level=4
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
        -Cllvm-args=-sanitizer-coverage-pc-table
        -Cllvm-args=-sanitizer-coverage-trace-compares
        --cfg fuzzing
        -Cdebug-assertions
        -Coverflow-checks
    )
    bins=()
    for t in "${targets[@]}"; do bins+=(--bin "$t"); done
    RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" cargo build --release \
        --target "$triple" --target-dir "$target_dir" "${bins[@]}"
fi
echo "fuzz: build took $((SECONDS - build_start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    corpus="${FUZZ_CORPUS:-$work}/$t"
    [ -n "${FUZZ_CORPUS:-}" ] || corpus="$work/corpus-$t"
    artifacts="$root/fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "$root/fuzz/seeds/$t" ] && [ -z "$(ls -A "$corpus")" ]; then
        cp "$root/fuzz/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    log="$work/$t.log"
    libfuzzer_args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$artifacts/" -print_final_stats=1)
    start=$SECONDS
    status=0
    # CPU seconds of the run (user + system), so long runs can be quoted in CPU-minutes.
    timer=()
    if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -o "$work/$t.time" -f '%U %S'); fi
    if [ $use_cargo_fuzz = 1 ]; then
        "${timer[@]}" cargo fuzz run --target-dir "$target_dir" "$t" "$corpus" -- "${libfuzzer_args[@]}" \
            >"$log" 2>&1 &
    else
        "${timer[@]}" "$target_dir/$triple/release/$t" "${libfuzzer_args[@]}" "$corpus" >"$log" 2>&1 &
    fi
    run=$!
    if [ -n "${FUZZ_CPU_SECONDS:-}" ]; then
        # Stops the fuzzer (the process named after the target) at its CPU budget.
        (
            hz=$(getconf CLK_TCK)
            while kill -0 "$run" 2>/dev/null; do
                sleep 10
                for pid in $(pgrep -P "$run" -x "$t") $(pgrep -x "$t" -P "$(pgrep -P "$run" | head -1)" 2>/dev/null); do
                    used=$(awk -v hz="$hz" '{ printf "%d", ($14 + $15) / hz }' "/proc/$pid/stat" 2>/dev/null || echo 0)
                    if [ "$used" -ge "$FUZZ_CPU_SECONDS" ]; then kill -INT "$pid"; fi
                done
            done
        ) &
        watcher=$!
    fi
    wait "$run" || status=$?
    if [ -n "${FUZZ_CPU_SECONDS:-}" ]; then
        kill "$watcher" 2>/dev/null || true
        # libFuzzer exits 72 when interrupted (here: at the CPU budget), after its stats.
        if [ $status = 72 ] && grep -q "run interrupted" "$log"; then status=0; fi
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)"
    cpu=""
    if [ -s "$work/$t.time" ]; then
        cpu=", $(awk '/^[0-9.]+ [0-9.]+$/ { printf "%.0f", $1 + $2 }' "$work/$t.time") CPU-s"
    fi
    if [ $status = 0 ]; then
        echo "fuzz: $t ok: ${runs:-?} runs in $((SECONDS - start)) s$cpu, $cov, corpus $(ls "$corpus" | wc -l) inputs"
    else
        echo "fuzz: $t FAILED (exit $status) after $((SECONDS - start)) s; last lines of its log:"
        tail -n 40 "$log"
        for crash in $(grep -o "$artifacts/[^ ]*" "$log" | sort -u); do
            [ -f "$crash" ] || continue
            echo "fuzz: $t input $crash ($(wc -c <"$crash") bytes):"
            od -An -tx1 -v "$crash" | head -n 64
        done
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${FUZZ_CPU_SECONDS:+up to ${FUZZ_CPU_SECONDS} CPU-s or }${seconds} s each without a crash"
