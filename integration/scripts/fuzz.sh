#!/usr/bin/env bash
# fuzz.sh - the bounded fuzz run (issue 17): every fuzz target replays its seed corpus
# and then mutates it for RUNRS_FUZZ_SECS seconds. Stable Rust only: the targets are
# plain tests (runtime-core/src/fuzz/, shim/src/fuzz.rs) driven by runrs-fuzzkit
# (integration/fuzzkit); the corpus is committed in <crate>/fuzz/corpus/<target>/.
#
#   integration/scripts/fuzz.sh                       # 45 s per target
#   RUNRS_FUZZ_SECS=600 integration/scripts/fuzz.sh   # a longer hunt
#   RUNRS_FUZZ_SEED=N integration/scripts/fuzz.sh     # replay a run (each prints its seed)
#
# Targets run RUNRS_FUZZ_JOBS (default 2) at a time: 9 targets take about
# 5 x RUNRS_FUZZ_SECS on 2 cores. It builds what the unit stage builds
# (cargo test --workspace --lib --bins), so after that stage nothing is compiled.
# A crash fails the run; its input, shrunk, is in RUNRS_FUZZ_CRASH_DIR (default
# target/fuzz-crashes/<target>/) and printed as a byte string: add it to the target's
# corpus and write a named regression test next to the fix.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUNRS_FUZZ_SECS=${RUNRS_FUZZ_SECS:-45}
export RUNRS_FUZZ_CRASH_DIR=${RUNRS_FUZZ_CRASH_DIR:-$PWD/target/fuzz-crashes}
jobs=${RUNRS_FUZZ_JOBS:-2}
report=$(mktemp)
trap 'rm -f "$report"' EXIT
export RUNRS_FUZZ_REPORT=$report

cargo=(cargo test --workspace --lib --bins --no-fail-fast ::fuzz_)
expected=$("${cargo[@]}" -- --list --format terse 2>/dev/null | grep -c ': test$' || true)
echo "fuzz: $expected targets, ${RUNRS_FUZZ_SECS} s each, $jobs at a time"
status=0
"${cargo[@]}" -- --test-threads "$jobs" --nocapture || status=$?

ran=$(wc -l <"$report")
summary=$(sort "$report" | awk '{printf "%s%s=%s", (NR > 1 ? ", " : ""), $1, $2} END {print ""}')
total=$(awk '{n += $2} END {print n + 0}' "$report")
echo "fuzz summary: $ran of $expected targets passed, $total inputs: $summary"
if [ "$status" -ne 0 ] || [ "$ran" -ne "$expected" ] || [ "$expected" -eq 0 ]; then
  echo "fuzz: FAILED (see the failing targets above; crashing inputs are in $RUNRS_FUZZ_CRASH_DIR)" >&2
  exit 1
fi
