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
cargo build --release -p containerd-shim-runrs-v2 -p runtime-core
install -D -m 0755 target/release/containerd-shim-runrs-v2 "$PREFIX/bin/containerd-shim-runrs-v2"
install -D -m 0755 target/release/runrs "$PREFIX/bin/runrs"
echo "installed $PREFIX/bin/containerd-shim-runrs-v2 and $PREFIX/bin/runrs"
