#!/usr/bin/env bash
# install-test-deps.sh - install the Debian 12 packages the CLI integration tests need.
# Same logic as shared/e2e/install-deps.sh, vendored so a clean clone is self-contained;
# if RUNRS_E2E_DIR (default: <workspace>/../shared/e2e) has install-deps.sh, e2e-deps.sh
# is run as well, so the e2e (containerd) tests get containerd 1.6, 1.7 and 2.1 too.
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
if [ -x "$e2e/install-deps.sh" ]; then
  # containerd 1.6 and the newer lines for the containerd e2e suite. Those come from the
  # Debian mirrors of trixie/sid: without them the suite skips 1.7/2.1, so a failure here
  # is a warning, not an error.
  RUNRS_E2E_DIR=$e2e "$here/e2e-deps.sh" ||
    echo "install-test-deps: warning: e2e-deps.sh failed; the containerd e2e suite will skip what is missing" >&2
fi
