#!/usr/bin/env bash
# run-systemd.sh [MODE...]
#
# The systemd cgroup driver on a host whose PID 1 is systemd: boots the throw-away VM of
# ../shared/systemd-vm once per cgroup mode (default: unified hybrid) and runs
# systemd-tests.sh in it as root, for runrs and for runc (the reference): the CLI with
# --systemd-cgroup (scopes, kubelet-style nested slices, limits as unit properties and
# cgroup files, update, daemon-reload, delete, bad paths) and containerd's shim with the
# SystemdCgroup option through `ctr run`, and a subset of the CRI suite with
# SystemdCgroup = true on containerd 2.1.
# Binaries: target/debug/runrs and target/debug/containerd-shim-runrs-v2 of this
# workspace (build them first: `cargo build --workspace`), or RUNRS / SHIM.
# Exit code: the tests' (0 = all passed), 125 = the VM failed, 124 = timeout.
# Env: ROOTFS (busybox rootfs dir, as integration/v2/run-v2.sh), and the VM's own
#      VM_MEM, VM_CPUS, VM_TIMEOUT.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED=$(cd "$REPO/.." && pwd)/shared
[ -d "$SHARED" ] || { echo "run-systemd: $SHARED not found (../shared beside the repository)" >&2; exit 2; }
RUNRS=$(readlink -f "${RUNRS:-$REPO/target/debug/runrs}")
SHIM=$(readlink -f "${SHIM:-$REPO/target/debug/containerd-shim-runrs-v2}")
ROOTFS=${ROOTFS:-/var/tmp/runrs-v2-rootfs/rootfs}
VM=$SHARED/systemd-vm/run-in-systemd-vm.sh
E2E=$SHARED/e2e

for b in "$RUNRS" "$SHIM"; do
  [ -x "$b" ] || { echo "run-systemd: no binary at $b (cargo build --workspace)" >&2; exit 2; }
done
[ -x "$VM" ] || { echo "run-systemd: no VM runner at $VM" >&2; exit 2; }
"$SHARED/vm-deps.sh" systemd || { echo "run-systemd: $SHARED/vm-deps.sh systemd could not install the VM's packages" >&2; exit 2; }
[ -e /usr/lib/systemd/user/dbus.socket ] || { echo "run-systemd: no dbus-user-session (the user's bus for the rootless checks; deps stage)" >&2; exit 2; }
[ -x /opt/containerd-2.1/usr/bin/containerd ] || { echo "run-systemd: no containerd 2.1 in /opt/containerd-2.1 (deps stage)" >&2; exit 2; }
for c in qemu-system-x86_64 jq runc containerd ctr python3 podman; do
  command -v $c >/dev/null || { echo "run-systemd: $c is missing (deps stage)" >&2; exit 2; }
done
"$REPO/integration/scripts/vm-rootfs.sh" "$ROOTFS" || exit 2

# The CRI suite (integration/tests/cri_e2e.rs), built on the host, runs a subset in the guest
# with SystemdCgroup = true (kubelet-style *.slice parents) on containerd 2.1.
CRI_E2E=${CRI_E2E:-$(cd "$REPO" && cargo test -p integration --test cri_e2e --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.executable != null) | .executable' | tail -1)}
[ -x "$CRI_E2E" ] || { echo "run-systemd: could not build the CRI suite (cargo test -p integration --test cri_e2e --no-run)" >&2; exit 2; }

# The guest sees the work dir read-write and the --ro paths read-only, at the same paths.
work=$(mktemp -d /tmp/runrs-systemd.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
cp "$RUNRS" "$work/bin/runrs"
cp "$SHIM" "$work/bin/containerd-shim-runrs-v2"
# The image rootless Podman loads (the rootless checks run as the test user).
chmod 755 "$work" "$work/bin"
bash "$REPO/integration/scripts/make-busybox-image.sh" "$work/busybox.tar" docker.io/library/busybox:latest >/dev/null \
  || { echo "run-systemd: could not build the busybox image archive" >&2; exit 2; }
chmod 644 "$work/busybox.tar"
modes=("$@"); [ ${#modes[@]} -gt 0 ] || modes=(unified hybrid)
rc=0
for mode in "${modes[@]}"; do
  echo "=== systemd VM, cgroup $mode"
  s=$(date +%s)
  VM_CGROUP=$mode "$VM" -C "$work" --ro "$ROOTFS" --ro "$HERE" --ro "$E2E" --ro "$REPO/deploy" \
    --ro /opt/containerd-2.1 --ro "$REPO" -- \
    bash "$HERE/systemd-tests.sh" "$mode" "$work/bin" "$ROOTFS" "$E2E" "$REPO/deploy" "$CRI_E2E" || rc=$?
  echo "=== cgroup $mode: $(( $(date +%s) - s )) s (boot + tests + poweroff), rc so far $rc"
done
exit $rc
