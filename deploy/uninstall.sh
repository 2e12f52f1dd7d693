#!/usr/bin/env bash
# uninstall.sh - undo deploy/install.sh (run as root): the runtime entry it added to
# containerd's config, a containerd restart under systemd, and the binaries.
# Env: PREFIX, CONTAINERD_CONFIG, RESTART as for install.sh. Pods still using the runrs
# handler keep running on their shims until they are deleted; remove them first.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
if [ -f "$CONFIG" ]; then
  before=$(cat "$CONFIG")
  python3 "$HERE/containerd-config.py" remove "$CONFIG"
  if [ "${RESTART:-1}" = 1 ] && [ "$before" != "$(cat "$CONFIG")" ] &&
     [ -d /run/systemd/system ] && systemctl is-active -q containerd 2>/dev/null; then
    systemctl restart containerd
  fi
fi
rm -f "$PREFIX/bin/containerd-shim-runrs-v2" "$PREFIX/bin/runrs"
echo "removed $PREFIX/bin/containerd-shim-runrs-v2 and $PREFIX/bin/runrs"
