#!/usr/bin/env bash
# e2e-deps.sh - everything the containerd e2e suite (tests/containerd_e2e) needs on a fresh
# Debian 12 machine, as root:
#   - the CLI suite's packages (install-test-deps.sh: busybox-static, jq, umoci, runc, ...)
#   - containerd 1.6 (Debian bookworm) and friends via shared/e2e/install-deps.sh
#   - containerd 1.7 (trixie) and 2.1 (sid) unpacked into /opt/containerd-LINE by
#     shared/e2e/install-containerd.sh, beside the system one (nothing is replaced)
# Idempotent: each step does nothing when its part is already there. Set
# E2E_LINES="1.7" (or "") to install fewer private containerd lines.
# RUNRS_E2E_DIR points at shared/e2e (default <workspace>/../shared/e2e).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
e2e=${RUNRS_E2E_DIR:-$here/../../../shared/e2e}
if [ ! -x "$e2e/install-deps.sh" ] || [ ! -x "$e2e/install-containerd.sh" ]; then
  echo "e2e-deps: $e2e lacks install-deps.sh/install-containerd.sh; set RUNRS_E2E_DIR to shared/e2e" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)

# The CLI suite's packages (it also runs $e2e/install-deps.sh: containerd, runc, crun, ...).
RUNRS_E2E_DIR=$e2e "$here/install-test-deps.sh"

# install-containerd.sh needs apt's Debian keyring and dpkg-deb; both are on Debian 12,
# but a trimmed image may lack the keyring.
if [ ! -s /usr/share/keyrings/debian-archive-keyring.gpg ]; then
  "${APT[@]}" install --no-install-recommends debian-archive-keyring ||
    { "${APT[@]}" update && "${APT[@]}" install --no-install-recommends debian-archive-keyring; }
fi

for line in ${E2E_LINES-1.7 2.1}; do
  "$e2e/install-containerd.sh" "$line"
done
echo "e2e-deps: done"
