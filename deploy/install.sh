#!/usr/bin/env bash
# install.sh - build runrs and install containerd-shim-runrs-v2 and runrs (run as root).
#   PREFIX=/usr/local ./deploy/install.sh
# containerd finds the shim by name on its PATH: runtime io.containerd.runrs.v2 ->
# containerd-shim-runrs-v2. Afterwards add deploy/containerd-runrs.toml to containerd's
# config for the CRI plugin (Kubernetes), and apply deploy/runtimeclass.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends \
    build-essential pkg-config libseccomp-dev
fi
# Static, non-PIE binaries (alias in .cargo/config.toml): faster exec, less memory per shim.
cargo release-static
BIN=target/x86_64-unknown-linux-gnu/release
install -D -m 0755 "$BIN/containerd-shim-runrs-v2" "$PREFIX/bin/containerd-shim-runrs-v2"
install -D -m 0755 "$BIN/runrs" "$PREFIX/bin/runrs"
echo "installed $PREFIX/bin/containerd-shim-runrs-v2 and $PREFIX/bin/runrs"
