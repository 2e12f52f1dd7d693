#!/usr/bin/env bash
# bench.sh - runrs vs containerd-shim-runc-v2 + runc vs the Rust runc shim vs crun, in one
# session, interleaved. Never a pass/fail test: it prints a table and writes JSON + a PNG chart.
#
#   integration/bench/bench.sh                    # everything, N=30
#   N=50 PHASES="ctr-run cli" integration/bench/bench.sh
#   integration/bench/bench.sh scale              # issue 17: 1000 containers, runrs vs runc-v2 (scale.py)
#   integration/bench/bench.sh cri                # issue 13: the CRI path (cri_bench.rs): pod start
#                                                 # latency and CONC=50 concurrent pods, runrs vs runc
#
# Env (all optional):
#   N=30                 samples per runtime for the latency phases (ctr run, CLI cycle, exec)
#   PHASES="ctr-run cli mem exec throughput"   subset to run (mem also does the 50-concurrent start)
#   OUT=/tmp/runrs-bench-results   where bench.json, bench.png and the raw logs go
#   RUNRS_BIN_DIR=<workspace>/target/x86_64-unknown-linux-gnu/release   runrs + containerd-shim-runrs-v2
#                        (default: the shipped static build, `cargo release-static` if absent)
#   RS_SHIM=<path>       containerd-shim-runc-v2-rs (rust-extensions' runc shim 0.1.x); default:
#                        /var/tmp/runrs-bench-rsshim/bin/containerd-shim-runc-v2-rs, installed there
#                        with `cargo install containerd-runc-shim --version '^0.1'` when absent
#                        (RS_SHIM=none skips it)
#   THROUGHPUT_MIB=1024  bytes a container writes to stdout in the throughput phase
#   RUNRS_E2E_DIR=<workspace>/../shared/e2e    containerd-up.sh / containerd-down.sh / crun-hybrid.sh
#   scale only: SCALE_N=1000 containers, SCALE_PAR=16 at a time, SCALE_RUNTIMES="runrs runc",
#     SCALE_NOFILE=65536 (containerd's and the shims' fd limit, raised to it when lower)
# Needs: root, containerd 1.6+, ctr, runc, crun (optional), busybox-static, python3 with
# matplotlib for the chart (`pip install matplotlib`; without it only the chart is skipped).
set -euo pipefail
mode=${1:-run}
case "$mode" in run|scale|cri) ;; *) echo "usage: $0 [run|scale|cri]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
ws=$(cd "$here/../.." && pwd)
export RUNRS_E2E_DIR=${RUNRS_E2E_DIR:-$ws/../shared/e2e}
[ -x "$RUNRS_E2E_DIR/containerd-up.sh" ] || { echo "bench: $RUNRS_E2E_DIR/containerd-up.sh not found (set RUNRS_E2E_DIR)" >&2; exit 1; }
export OUT=${OUT:-/tmp/runrs-bench-results} N=${N:-30}
mkdir -p "$OUT"
lock() { if command -v flock >/dev/null; then flock -o /tmp/runrs-cargo.lock "$@"; else "$@"; fi; }

# Default: the shipped build (static, non-PIE) of the tree as it is now: cargo runs every time
# (a no-op when up to date), so binaries left in target/ by an earlier experiment are never
# measured in its place.
bin=${RUNRS_BIN_DIR:-$ws/target/x86_64-unknown-linux-gnu/release}
if [ -z "${RUNRS_BIN_DIR:-}" ]; then
  (cd "$ws" && lock cargo release-static)
fi
if [ ! -x "$bin/runrs" ] || [ ! -x "$bin/containerd-shim-runrs-v2" ]; then
  echo "bench: no runrs binaries in $bin" >&2; exit 1
fi
bin=$(cd "$bin" && pwd)   # containerd's PATH and the shim links need it absolute

# The CRI path: cri_bench.rs starts its own containerd with the CRI plugin (handlers runrs,
# from deploy/'s snippet, and runc) and writes $OUT/cri.json and cri.txt.
if [ "$mode" = cri ]; then
  (cd "$ws" && lock cargo build -q -p integration --example cri_bench)
  RUNRS_TEST_SHIM=$bin/containerd-shim-runrs-v2 exec "${CARGO_TARGET_DIR:-$ws/target}/debug/examples/cri_bench"
fi

# The scale benchmark compares runrs with the runc-v2 shim only.
[ "$mode" = scale ] && RS_SHIM=${RS_SHIM:-none}
rs_shim=${RS_SHIM:-/var/tmp/runrs-bench-rsshim/bin/containerd-shim-runc-v2-rs}
if [ "$rs_shim" != none ] && [ ! -x "$rs_shim" ] && [ -z "${RS_SHIM:-}" ]; then
  echo "bench: installing containerd-runc-shim 0.1.x into /var/tmp/runrs-bench-rsshim (once)" >&2
  (cd /var/tmp && lock cargo install containerd-runc-shim --version '^0.1' --root /var/tmp/runrs-bench-rsshim \
     >"$OUT/rs-shim-install.log" 2>&1) || echo "bench: cargo install containerd-runc-shim failed, see $OUT/rs-shim-install.log" >&2
fi

# Shims containerd finds by runtime name, on its PATH.
shims=$(mktemp -d /tmp/runrs-bench-shims.XXXXXX)
export E2E_DIR=${E2E_DIR:-/tmp/runrs-bench-containerd} E2E_NS=runrs-bench E2E_SHIM_DIR=$shims
cleanup() {
  "$RUNRS_E2E_DIR/containerd-down.sh" >/dev/null 2>&1 || true
  rm -rf "$shims"
  # The shims' state roots for the namespace (empty once every container is gone).
  rmdir "/run/containerd/runrs/$E2E_NS" "/run/containerd/runc/$E2E_NS" 2>/dev/null || true
}
trap cleanup EXIT
ln -s "$bin/containerd-shim-runrs-v2" "$shims/containerd-shim-runrs-v2"
[ -x "$rs_shim" ] && ln -s "$rs_shim" "$shims/containerd-shim-runc-v2-rs"

if [ "$mode" = scale ]; then
  # containerd and the shims inherit this shell's limits: one connection (or two) per shim.
  # The hard limit is raised too where we may (CAP_SYS_RESOURCE), else the soft one up to it.
  nofile=${SCALE_NOFILE:-65536} soft=$(ulimit -Sn) hard=$(ulimit -Hn)
  if [ "$soft" != unlimited ] && [ "$soft" -lt "$nofile" ]; then
    if ulimit -n "$nofile" 2>/dev/null; then :
    elif [ "$hard" != unlimited ] && [ "$hard" -lt "$nofile" ]; then ulimit -Sn "$hard"
    else ulimit -Sn "$nofile"; fi
    echo "bench: open-file limit for containerd raised from $soft (hard $hard) to $(ulimit -Sn) (hard $(ulimit -Hn))" >&2
  fi
fi
"$RUNRS_E2E_DIR/containerd-up.sh" >"$OUT/containerd-up.log" 2>&1 || { cat "$OUT/containerd-up.log" >&2; exit 1; }
# shellcheck disable=SC1091
source "$E2E_DIR/env"
export RUNRS_BIN=$bin/runrs RS_SHIM_OK=$([ -x "$rs_shim" ] && echo 1 || echo 0)
if [ "$mode" = scale ]; then
  python3 "$here/scale.py"
else
  python3 "$here/bench.py" run
fi
