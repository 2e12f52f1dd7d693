#!/usr/bin/env bash
# run-v2.sh [RUNRS]
#
# Resource control of the runrs CLI on a cgroup v2-only kernel: boots the throw-away VM
# of ../shared/cgroup2-vm (or $CGROUP2_VM) and runs cli-v2-tests.sh in it as root.
# RUNRS defaults to target/debug/runrs of this workspace (build it first:
# `cargo build -p runtime-core --bin runrs`). Needs qemu-system-x86, busybox-static, jq.
# Exit code: the tests' (0 = all passed), 125 = the VM failed, 124 = timeout.
#
# Env: ROOTFS (busybox rootfs dir; built by integration/scripts/vm-rootfs.sh
#      when missing, default /var/tmp/runrs-v2-rootfs/rootfs), CGROUP2_VM,
#      and the VM's own VM_MEM, VM_CPUS, VM_TIMEOUT.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
[ -d "$SHARED" ] || { echo "run-v2: $SHARED not found (../shared beside the repository)" >&2; exit 2; }
RUNRS=$(readlink -f "${1:-$REPO/target/debug/runrs}")
ROOTFS=${ROOTFS:-/var/tmp/runrs-v2-rootfs/rootfs}
VM=${CGROUP2_VM:-$SHARED/cgroup2-vm/run-in-v2-vm.sh}

[ -x "$RUNRS" ] || { echo "run-v2: no runrs binary at $RUNRS (cargo build -p runtime-core --bin runrs)" >&2; exit 2; }
[ -x "$VM" ] || { echo "run-v2: no VM runner at $VM (set CGROUP2_VM)" >&2; exit 2; }
"$SHARED/vm-deps.sh" || { echo "run-v2: $SHARED/vm-deps.sh could not install the VM's packages" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "run-v2: qemu-system-x86_64 missing after vm-deps.sh" >&2; exit 2; }
"$REPO/integration/scripts/vm-rootfs.sh" "$ROOTFS" || exit 2

# The guest sees the work dir read-write and the extra paths read-only, at the same paths.
work=$(mktemp -d /tmp/runrs-res-v2.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$RUNRS" "$work/runrs"
chmod 755 "$work" "$work/runrs"   # the rootless tests run it as other users
# The image the rootless Podman test loads.
bash "$REPO/integration/scripts/make-busybox-image.sh" "$work/busybox.tar" docker.io/library/busybox:latest >/dev/null \
  || { echo "run-v2: could not build the busybox image archive" >&2; exit 2; }
chmod 644 "$work/busybox.tar"
rc=0
"$VM" -C "$work" --ro "$ROOTFS" --ro "$HERE" -- \
  bash "$HERE/cli-v2-tests.sh" "$work/runrs" "$ROOTFS" || rc=$?
exit $rc
