#!/usr/bin/env bash
# Builds every fuzz target and runs each for a fixed time on a copy of its seed corpus.
# Fails on any crash, naming the input that caused it. docs/FUZZING.md has the details.
#
#   fuzz/smoke.sh                     # CI: 20 s per target
#   FUZZ_SECONDS=600 fuzz/smoke.sh    # longer
#   fuzz/smoke.sh config h1_chunked   # only these targets
#
# FUZZ_SECONDS   seconds per target (default 20)
# FUZZ_TOOLCHAIN the nightly toolchain (default nightly)
# CARGO_TARGET_DIR where to build (default fuzz/target; .ci/run keeps it beside the clone)
set -euo pipefail

cd "$(dirname "$0")"
fuzz_dir=$(pwd)
seconds=${FUZZ_SECONDS:-20}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$fuzz_dir/target}

if ! cargo +"$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi

start=$(date +%s)
echo "fuzz: building ${#targets[@]} targets"
if [[ $# -gt 0 ]]; then
    for t in "${targets[@]}"; do cargo +"$toolchain" fuzz build "$t"; done
else
    cargo +"$toolchain" fuzz build
fi
echo "fuzz: built in $(( $(date +%s) - start )) s"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
for t in "${targets[@]}"; do
    corpus=$scratch/corpus/$t
    artifacts=$fuzz_dir/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    if [[ -d corpus/$t ]]; then cp -R "corpus/$t/." "$corpus/"; fi
    log=$scratch/$t.log
    t0=$(date +%s)
    if cargo +"$toolchain" fuzz run "$t" "$corpus" -- \
        -max_total_time="$seconds" -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        runs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
        echo "fuzz: $t: passed (${seconds} s, ${runs:-?} runs, $(( $(date +%s) - t0 )) s wall)"
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        crash=$(grep -Eo "Test unit written to [^ ]+" "$log" | tail -n 1 | sed 's/Test unit written to //')
        echo "fuzz: $t: FAILED; crashing input: ${crash:-see log below}"
        grep -E "panicked at|ERROR: |SUMMARY: " "$log" | head -n 5 | sed 's/^/    /'
        [[ -n $crash ]] || tail -n 30 "$log" | sed 's/^/    /'
        echo "    reproduce: cargo +$toolchain fuzz run $t ${crash:-}"
    fi
done
echo "fuzz: ${#targets[@]} targets, $passed passed, $failed failed ($(( $(date +%s) - start )) s in all)"
[[ $failed -eq 0 ]]
