#!/usr/bin/env bash
# install.sh - install runrs on a node (run as root): the binaries, the CRI runtime entry in
# containerd's config, and a containerd restart when systemd runs it.
#   ./deploy/install.sh                       # builds (cargo release-static) and installs
#   BIN_DIR=dir ./deploy/install.sh           # installs already built binaries from dir
# Env: PREFIX (/usr/local), CONTAINERD_CONFIG (/etc/containerd/config.toml; created with
#      CONTAINERD_CONFIG_VERSION, default 2, when missing), RESTART (1: restart containerd
#      under systemd when it is active there; 0: don't).
# containerd finds the shim by name on its PATH: runtime io.containerd.runrs.v2 ->
# containerd-shim-runrs-v2. The runtime entry ("runrs", for a RuntimeClass with handler
# runrs: deploy/runtimeclass.yaml) takes SystemdCgroup from the node's runc entry, so pods
# land in the same cgroup hierarchy as with runc. Running it again changes nothing;
# deploy/uninstall.sh undoes it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
if [ -z "${BIN_DIR:-}" ]; then
  cd "$HERE/.."
  if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends \
      build-essential pkg-config libseccomp-dev
  fi
  # Static, non-PIE binaries (alias in .cargo/config.toml): faster exec, less memory per shim.
  cargo release-static
  BIN_DIR=$PWD/target/x86_64-unknown-linux-gnu/release
fi
for b in containerd-shim-runrs-v2 runrs; do
  [ -x "$BIN_DIR/$b" ] || { echo "install: no $b in $BIN_DIR" >&2; exit 1; }
  install -D -m 0755 "$BIN_DIR/$b" "$PREFIX/bin/$b"
done
echo "installed $PREFIX/bin/containerd-shim-runrs-v2 and $PREFIX/bin/runrs"
mkdir -p "$(dirname "$CONFIG")"
before=$(cat "$CONFIG" 2>/dev/null || true)
python3 "$HERE/containerd-config.py" add "$CONFIG"
if [ "${RESTART:-1}" = 1 ] && [ "$before" != "$(cat "$CONFIG")" ] &&
   [ -d /run/systemd/system ] && systemctl is-active -q containerd 2>/dev/null; then
  echo "restarting containerd (running containers and their shims keep running)"
  systemctl restart containerd
fi
