#!/usr/bin/env bash
# run-tests.sh - the whole runrs test suite, from a fresh Debian 12 machine (run as root).
#
#   ./integration/run-tests.sh            # everything
#   STAGES="lint unit cli" ./integration/run-tests.sh   # a subset
#
# Stages:
#   deps     apt packages for building and testing (idempotent; apt lock timeout 300 s)
#   lint     scripts/check-structure.sh (unsafe/libc only in runtime-core/src/sys, files
#            <= 600 lines, no module cycles), cargo fmt --check, cargo clippy -D warnings
#   unit     unit tests of every crate (cargo test --workspace --lib --bins)
#   fuzz     the bounded fuzz run: 9 targets, RUNRS_FUZZ_SECS (45) each (scripts/fuzz.sh)
#   cli      runc-compatible CLI suite (integration/tests/cli_*.rs: incl. create failing at
#            each step and state-dir faults) against runrs, the privileged security suite
#            (runtime-core/tests/security) and the runrs CLI suite (runtime-core/tests/cli)
#   e2e      containerd end-to-end suite on containerd 1.6, 1.7 and 2.1, runrs and runc
#            (incl. kill -9 and restart faults, every scenario under the leak checker)
#   cri      CRI end-to-end suite (tests/cri_e2e.rs): containerd's CRI API on 1.6, 1.7 and 2.1,
#            handlers runrs and runc, pods on host network and a CNI bridge
#   clients  Podman 4.3, Docker 20.10 (--add-runtime: runrs under containerd's runc shim)
#            and Docker 26 (runtimeType io.containerd.runrs.v2), runrs and runc
#            (integration/tests/clients_e2e.rs; a missing client fails the stage)
#   static   the shipped build (cargo release-static): CLI suite and e2e (one containerd)
#   v2       the cgroup v2 checks inside a cgroup-v2-only VM (../shared/cgroup2-vm)
#   systemd  the systemd cgroup driver inside a VM whose PID 1 is systemd
#            (../shared/systemd-vm), cgroup unified and hybrid, CLI and ctr, runrs and runc
# CI (.ci/run) runs this script with no arguments. At the end it prints, per stage, how many
# tests passed, failed, were skipped (with the reasons) and ignored, then a closing line
# "total: N passed, N failed, N skipped"; a test stage that ran no test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
command -v cargo >/dev/null || { echo "run-tests: cargo not found: install a Rust toolchain (rustup, stable >= 1.85)" >&2; exit 1; }
STAGES=${STAGES:-deps lint unit fuzz cli e2e cri clients static v2 systemd}
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

# --- per-stage test counts --------------------------------------------------------------
# cargo reports a test that returned early (a printed skip) as passed and hides its output,
# so every suite's skip helper also appends a line to $RUNRS_SKIP_LOG (integration::
# record_skip); the counts below come from cargo's "test result:" lines, the e2e runner's
# summary and the VM suite's "ok -" lines. A test stage that ran nothing fails the run.
LOGS=$(mktemp -d /tmp/runrs-run-tests.XXXXXX)
STAGE_ORDER=()
declare -A PASSED FAILED IGNORED SKIPPED
suite() { # STAGE CMD... : run one test command of STAGE, keeping its output for the counts
  local stage=$1; shift
  case " ${STAGE_ORDER[*]} " in *" $stage "*) ;; *) STAGE_ORDER+=("$stage");; esac
  local out rc=0 pid
  out=$(mktemp "$LOGS/$stage.XXXXXX.out")
  touch "$LOGS/$stage.skips"
  # The output goes to a file that tail follows until the command exits: a daemon a
  # test leaks (holding stdout) cannot keep the runner waiting, as a pipe to tee would.
  RUNRS_SKIP_LOG=$LOGS/$stage.skips "$@" > "$out" 2>&1 < /dev/null &
  pid=$!
  tail -s 0.2 -n +1 --pid="$pid" -f "$out"
  wait "$pid" || rc=$?
  count "$stage"
  return $rc
}
count() { # STAGE: (re)compute the stage's counts from its output and skip log
  local stage=$1 p f i s
  read -r p f i s < <(awk '
    /^test result: /{ for (k = 2; k <= NF; k++) {
        if ($k ~ /^passed;?$/) p += $(k-1); if ($k ~ /^failed;?$/) f += $(k-1); if ($k ~ /^ignored;?$/) i += $(k-1) } }
    /^(containerd|clients) e2e: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped/ { p += $3; f += $5; s += $7 }
    /^ok - / { p++ } /^not ok - / { f++ }
    END { print p+0, f+0, i+0, s+0 }' "$LOGS/$stage".*.out)
  local logged; logged=$(wc -l < "$LOGS/$stage.skips")
  # A test that skipped itself was counted as passed by cargo.
  PASSED[$stage]=$(( p > logged ? p - logged : 0 )); FAILED[$stage]=$f; IGNORED[$stage]=$i
  SKIPPED[$stage]=$(( s + logged ))
}
summary() {
  local rc=$? st tp=0 tf=0 ts=0 empty=()
  [ ${#STAGE_ORDER[@]} = 0 ] && { rm -rf "$LOGS"; return; }
  echo
  printf '%-8s %7s %7s %8s %8s\n' stage passed failed skipped ignored
  for st in "${STAGE_ORDER[@]}"; do
    printf '%-8s %7s %7s %8s %8s\n' "$st" "${PASSED[$st]}" "${FAILED[$st]}" "${SKIPPED[$st]}" "${IGNORED[$st]}"
    tp=$((tp + PASSED[$st])); tf=$((tf + FAILED[$st])); ts=$((ts + SKIPPED[$st]))
    [ $(( PASSED[$st] + FAILED[$st] )) = 0 ] && empty+=("$st")
  done
  cat "$LOGS"/*.skips > "$LOGS/skips.all" 2>/dev/null || true
  if [ -s "$LOGS/skips.all" ]; then
    echo "skipped (from the suites' skip log):"; sed 's/^/  /' "$LOGS/skips.all"
  fi
  rm -rf "$LOGS"
  echo "total: $tp passed, $tf failed, $ts skipped"
  if [ ${#empty[@]} -gt 0 ]; then
    echo "run-tests: stage(s) ${empty[*]} ran no test" >&2
    [ $rc = 0 ] && exit 1
  fi
}
trap summary EXIT

if has deps; then
  # Build: libseccomp for the seccomp crate; test: busybox rootfs, runc reference, containerd.
  apt_install build-essential pkg-config libseccomp-dev
  # containerd 1.6/1.7/2.1, runc, busybox, umoci, jq: a failure here is a failed run.
  integration/scripts/install-test-deps.sh
  # The CRI suite: the pod network's CNI plugins (/usr/lib/cni), `ip` (its bridge is
  # removed at teardown); gcc (build-essential) builds the pause image; a private
  # image registry on loopback (docker-registry: CRI's checkpoint restore pulls the
  # archive's base image by digest). Its packaged service is not used.
  apt_install containernetworking-plugins iproute2 docker-registry
  # The QEMU test VMs (v2 stage; systemd VM): qemu-system-x86 from the same suite as the
  # machine's qemu-utils (bookworm-backports here), busybox-static, python3, systemd, dbus.
  # vm-deps.sh installs QEMU with `-t bookworm-backports` when qemu-utils came from there
  # (these machines ship it so) but does not add that suite: a new machine's apt sources
  # may lack it. Add it (same mirror; backports are never preferred unless asked for).
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo &&
     ! command -v qemu-system-x86_64 >/dev/null &&
     ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports to apt's sources (for qemu-system-x86)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$("$RUNRS_E2E_DIR/debian-mirror.sh")" > /etc/apt/sources.list.d/runrs-bookworm-backports.sources
    "${APT[@]}" update
  fi
  log "VM packages (../shared/vm-deps.sh)"
  "$ROOT/../shared/vm-deps.sh" systemd
  command -v qemu-system-x86_64 >/dev/null || { echo "run-tests: qemu-system-x86_64 still missing after vm-deps.sh" >&2; exit 1; }
  # CRIU for checkpoint/restore (cli_criu): Debian 12's 3.17 cannot dump on new kernels.
  log "criu"
  # sid's criu (4.2) first: trixie's 4.1 cannot dump TCP sockets on kernels >= 6.16
  # (it asks inet sockets for SO_PASSCRED; checkpoint-restore/criu#2718).
  CRIU_SUITES=${CRIU_SUITES:-"sid trixie experimental"} "$RUNRS_E2E_DIR/install-criu.sh"
  # The clients stage: podman, conmon, docker.io 20.10 (Debian 12) and Docker 26's
  # binaries from trixie unpacked into /opt/docker-26 (no daemon is started).
  log "container clients (podman, docker 20.10, docker 26)"
  integration/scripts/install-clients.sh
fi

if has lint; then
  log "structure: kernel boundary, file sizes, module cycles"
  integration/scripts/check-structure.sh "$ROOT"
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
fi

log "cargo build"
cargo build --workspace --all-targets

if has unit; then
  log "unit tests"
  suite unit cargo test --workspace --lib --bins
fi

if has fuzz; then
  log "bounded fuzz run (${RUNRS_FUZZ_SECS:-45} s per target)"
  suite fuzz integration/scripts/fuzz.sh
fi

if has cli; then
  log "CLI suite (runc-compatible)"
  suite cli cargo test -p integration --test 'cli_*'
  log "security suite (seccomp, capabilities, user namespaces, CVE regressions)"
  suite cli cargo test -p runtime-core --test security
  log "runrs-specific CLI suite (hooks, sd_notify, RDT, features)"
  suite cli cargo test -p runtime-core --test cli
  suite cli cargo test -p runtime-core --test spawn_race
fi

if has e2e; then
  log "containerd end-to-end suite"
  # Every containerd line the deps stage installs must run: a missing one fails the suite.
  RUNRS_E2E_REQUIRE_ALL=1 suite e2e flock /tmp/runrs-e2e.lock cargo test -p integration --test 'containerd*'
fi

if has cri; then
  log "CRI end-to-end suite"
  # As in e2e: every containerd line installed by the deps stage must run, and a missing
  # CNI plugin fails the suite.
  RUNRS_E2E_REQUIRE_ALL=1 suite cri flock /tmp/runrs-e2e.lock cargo test -p integration --test cri_e2e
fi

if has clients; then
  log "client end-to-end suite (podman, docker 20.10, docker 26)"
  # A client the deps stage installs that is missing fails the suite (no skip).
  RUNRS_E2E_REQUIRE_ALL=1 suite clients flock /tmp/runrs-e2e.lock cargo test -p integration --test clients_e2e
fi

if has static; then
  # The binaries deploy/install.sh ships: static, non-PIE (.cargo/config.toml).
  log "cargo release-static"
  cargo release-static
  bin=$ROOT/target/x86_64-unknown-linux-gnu/release
  log "CLI suite with the static runrs"
  RUNRS_TEST_RUNTIME=$bin/runrs suite static cargo test -p integration --test 'cli_*'
  log "containerd end-to-end suite with the static shim (first containerd, runrs only)"
  RUNRS_TEST_SHIM=$bin/containerd-shim-runrs-v2 RUNRS_E2E_RUNTIMES=runrs RUNRS_E2E_CONTAINERD=1.6 \
    suite static flock /tmp/runrs-e2e.lock cargo test -p integration --test 'containerd*'
fi

if has v2; then
  log "cgroup v2 VM checks"
  suite v2 flock /tmp/runrs-vm.lock integration/v2/run-v2.sh
fi
if has systemd; then
  log "systemd VM checks (the systemd cgroup driver, unified and hybrid, runrs and runc)"
  cargo build -p runtime-core --bin runrs -p containerd-shim-runrs-v2
  suite systemd flock /tmp/runrs-vm.lock integration/systemd/run-systemd.sh
fi
log "all requested stages passed ($STAGES)"
