#!/usr/bin/env bash
# e2e-deps.sh - what the containerd e2e suite (tests/containerd_e2e.rs) needs on a fresh
# Debian 12 machine, as root:
#   - containerd 1.6 (Debian bookworm), runc, busybox-static, jq, umoci, ... via
#     shared/e2e/install-deps.sh
#   - containerd 1.7 (trixie) and 2.1 (sid) unpacked into /opt/containerd-LINE by
#     shared/e2e/install-containerd.sh, beside the system one (nothing is replaced)
# Idempotent: each step does nothing when its part is already there. E2E_LINES="1.7"
# (or "") installs fewer private lines. RUNRS_E2E_DIR points at shared/e2e (default
# <workspace>/../shared/e2e). install-test-deps.sh runs this script too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
e2e=${RUNRS_E2E_DIR:-$here/../../../shared/e2e}
if [ ! -x "$e2e/install-deps.sh" ] || [ ! -x "$e2e/install-containerd.sh" ]; then
  echo "e2e-deps: $e2e lacks install-deps.sh/install-containerd.sh; set RUNRS_E2E_DIR to shared/e2e" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)

"$e2e/install-deps.sh"

# install-containerd.sh verifies the trixie/sid indexes with Debian's archive keyring
# (present on Debian 12; a trimmed image may lack it).
if [ ! -s /usr/share/keyrings/debian-archive-keyring.gpg ]; then
  "${APT[@]}" install --no-install-recommends debian-archive-keyring ||
    { "${APT[@]}" update && "${APT[@]}" install --no-install-recommends debian-archive-keyring; }
fi

for line in ${E2E_LINES-1.7 2.1}; do
  "$e2e/install-containerd.sh" "$line"
done
echo "e2e-deps: done"
