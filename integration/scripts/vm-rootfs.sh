#!/usr/bin/env bash
# vm-rootfs.sh DIR - make sure DIR holds the busybox rootfs the QEMU VM suites share
# read-only with their guests (integration/v2, integration/systemd): built with
# make-busybox-image.sh when missing (under a lock: suites may race), plus the mount points
# their bundles use (/out, /tmp), which a read-only share cannot create later.
# Exit 2 when it cannot be built.
set -euo pipefail
ROOTFS=${1:?usage: $0 DIR}
MAKE_IMAGE=$(cd "$(dirname "$0")" && pwd)/make-busybox-image.sh
if [ ! -x "$ROOTFS/bin/busybox" ]; then
  mkdir -p "$(dirname "$ROOTFS")"
  flock "$(dirname "$ROOTFS")/.lock" sh -c \
    "[ -x '$ROOTFS/bin/busybox' ] || ROOTFS_DIR='$ROOTFS' '$MAKE_IMAGE' /tmp/runrs-vm-busybox-\$\$.tar >/dev/null && rm -f /tmp/runrs-vm-busybox-\$\$.tar"
  [ -x "$ROOTFS/bin/busybox" ] || { echo "vm-rootfs: could not build the busybox rootfs in $ROOTFS" >&2; exit 2; }
fi
mkdir -p "$ROOTFS/out" "$ROOTFS/tmp"
