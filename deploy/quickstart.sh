#!/usr/bin/env bash
# quickstart.sh - on a fresh Debian 12 machine (as root): install containerd from Debian,
# build runrs, start a private containerd with a locally built busybox image, and run a
# container through it with runrs as the runtime. Leaves that containerd running; stop it
# with:  E2E_DIR=/tmp/runrs-quickstart E2E_NS=runrs-quickstart ../shared/e2e/containerd-down.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
command -v cargo >/dev/null || { echo "quickstart: cargo not found: install a Rust toolchain (rustup, stable >= 1.85)" >&2; exit 1; }
E2E=${RUNRS_E2E_DIR:-$ROOT/../shared/e2e}
[ -x "$E2E/containerd-up.sh" ] || { echo "quickstart: $E2E/containerd-up.sh not found (set RUNRS_E2E_DIR)" >&2; exit 1; }
"$E2E/install-deps.sh"
if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends \
    build-essential pkg-config libseccomp-dev
fi
# Static, non-PIE binaries (alias in .cargo/config.toml): faster exec, less memory per shim.
cargo release-static
BIN=target/x86_64-unknown-linux-gnu/release
export E2E_DIR=${E2E_DIR:-/tmp/runrs-quickstart} E2E_NS=${E2E_NS:-runrs-quickstart}
export E2E_SHIM_DIR=$ROOT/$BIN E2E_RUNTIMES=io.containerd.runrs.v2
"$E2E/containerd-up.sh" >/dev/null
# shellcheck disable=SC1091
source "$E2E_DIR/env"
echo "+ ctr run --rm --runtime io.containerd.runrs.v2 $E2E_IMAGE runrs-hello echo hello from runrs"
ctr run --rm --runtime io.containerd.runrs.v2 "$E2E_IMAGE" "runrs-hello-$$" echo hello from runrs
