#!/usr/bin/env bash
# run-tests.sh - the whole runrs test suite, from a fresh Debian 12 machine (run as root).
#
#   ./integration/run-tests.sh            # everything
#   STAGES="lint unit cli" ./integration/run-tests.sh   # a subset
#
# Stages:
#   deps     apt packages for building and testing (idempotent; apt lock timeout 300 s)
#   lint     cargo fmt --check, cargo clippy --workspace --all-targets -D warnings
#   unit     unit tests of every crate (cargo test --workspace --lib --bins)
#   cli      runc-compatible CLI suite (integration/tests/cli_*.rs) against runrs, and the
#            privileged security suite (runtime-core/tests/security)
#   e2e      containerd end-to-end suite (every containerd version installed)
#   static   the shipped build (cargo release-static): CLI suite and e2e (one containerd)
#   v2       the cgroup v2 checks inside a cgroup-v2-only VM (../shared/cgroup2-vm)
# CI (.ci/run) runs this script with no arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
command -v cargo >/dev/null || { echo "run-tests: cargo not found: install a Rust toolchain (rustup, stable >= 1.85)" >&2; exit 1; }
STAGES=${STAGES:-deps lint unit cli e2e static v2}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUNRS_E2E_DIR=${RUNRS_E2E_DIR:-$ROOT/../shared/e2e}
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)
t0=$(date +%s)
log() { printf '[run-tests %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
has() { case " $STAGES " in *" $1 "*) return 0;; *) return 1;; esac; }

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${APT[@]}" install --no-install-recommends "${missing[@]}" || {
    "${APT[@]}" update
    "${APT[@]}" install --no-install-recommends "${missing[@]}"
  }
}

if has deps; then
  # Build: libseccomp for the seccomp crate; test: busybox rootfs, runc reference, containerd.
  apt_install build-essential pkg-config libseccomp-dev
  integration/scripts/install-test-deps.sh
  # CRIU for checkpoint/restore (cli_criu): Debian 12's 3.17 cannot dump on new kernels.
  log "criu"
  # sid's criu (4.2) first: trixie's 4.1 cannot dump TCP sockets on kernels >= 6.16
  # (it asks inet sockets for SO_PASSCRED; checkpoint-restore/criu#2718).
  CRIU_SUITES=${CRIU_SUITES:-"sid trixie experimental"} "$RUNRS_E2E_DIR/install-criu.sh"
fi

if has lint; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
fi

log "cargo build"
cargo build --workspace --all-targets

if has unit; then
  log "unit tests"
  cargo test --workspace --lib --bins
fi

if has cli; then
  log "CLI suite (runc-compatible)"
  cargo test -p integration --test 'cli_*'
  log "security suite (seccomp, capabilities, user namespaces, CVE regressions)"
  cargo test -p runtime-core --test security
  log "runrs-specific CLI suite (hooks, sd_notify, RDT, features)"
  cargo test -p runtime-core --test cli
fi

if has e2e && ls integration/tests/containerd*.rs >/dev/null 2>&1; then
  log "containerd end-to-end suite"
  cargo test -p integration --test 'containerd*'
fi

if has static; then
  # The binaries deploy/install.sh ships: static, non-PIE (.cargo/config.toml).
  log "cargo release-static"
  cargo release-static
  bin=$ROOT/target/x86_64-unknown-linux-gnu/release
  log "CLI suite with the static runrs"
  RUNRS_TEST_RUNTIME=$bin/runrs cargo test -p integration --test 'cli_*'
  log "containerd end-to-end suite with the static shim (first containerd, runrs only)"
  RUNRS_TEST_SHIM=$bin/containerd-shim-runrs-v2 RUNRS_E2E_RUNTIMES=runrs RUNRS_E2E_CONTAINERD=1.6 \
    cargo test -p integration --test 'containerd*'
fi

if has v2 && [ -x integration/v2/run-v2.sh ]; then
  log "cgroup v2 VM checks"
  integration/v2/run-v2.sh
fi
log "all requested stages passed ($STAGES)"
