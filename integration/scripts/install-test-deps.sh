#!/usr/bin/env bash
# install-test-deps.sh - install the Debian 12 packages the CLI integration tests need.
# Same logic as shared/e2e/install-deps.sh; then e2e-deps.sh (RUNRS_E2E_DIR, default
# <workspace>/../shared/e2e), so the e2e (containerd) tests get containerd 1.6, 1.7 and 2.1.
# Idempotent: does nothing when everything is installed; runs `apt-get update` only when a
# package cannot be installed from the current lists. Run as root.
#   busybox-static  the container rootfs (make-busybox-image.sh)
#   jq, umoci       OCI image tooling used by make-busybox-image.sh and the e2e scripts
#   runc            the reference runtime the suite is validated against
#   procps, util-linux  ps, nsenter, findmnt for debugging failed tests
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)
PKGS=(busybox-static jq umoci runc procps util-linux ${EXTRA_PKGS:-})

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all packages present"
else
  echo "install-test-deps: installing ${missing[*]}"
  if ! "${APT[@]}" install --no-install-recommends "${missing[@]}"; then
    "${APT[@]}" update
    "${APT[@]}" install --no-install-recommends "${missing[@]}"
  fi
fi

here=$(cd "$(dirname "$0")" && pwd)
e2e=${RUNRS_E2E_DIR:-$here/../../../shared/e2e}
# containerd 1.6 and the newer lines for the containerd e2e suite (1.7 from trixie, 2.1
# from sid, via the Debian mirrors). The suite needs all three: a failure here fails.
[ -x "$e2e/install-deps.sh" ] || { echo "install-test-deps: $e2e/install-deps.sh not found (set RUNRS_E2E_DIR to ../shared/e2e)" >&2; exit 1; }
RUNRS_E2E_DIR=$e2e "$here/e2e-deps.sh"
