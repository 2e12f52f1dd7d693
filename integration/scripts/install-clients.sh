#!/usr/bin/env bash
# install-clients.sh - the container clients the `clients` stage drives (run as root).
#   podman 4.3, conmon, docker.io 20.10 (dockerd + docker + containerd-shim-runc-v2):
#       Debian 12 packages, installed with apt.
#   Docker 26 (dockerd 26.1 + docker 26.1 from Debian 13 "trixie"): trixie's docker.io
#       cannot be installed as a package next to bookworm's docker.io 20.10 (same package
#       name: it would replace 20.10, and its docker-cli ships /usr/bin/docker too), but
#       the binaries only need glibc >= 2.34 (bookworm: 2.36): the two .debs are fetched with a
#       private apt source list (the system's apt configuration is left alone) and unpacked
#       into /opt/docker-26 (usr/sbin/dockerd, usr/bin/docker).
#   the user runrs-rootless with subuid/subgid ranges (rootless Podman), and
#       dbus-user-session for its user bus (rootless Podman under systemd).
# Idempotent. No daemon is started: if the machine has no /usr/sbin/policy-rc.d, one that
# forbids service starts is put in place for the apt run and removed afterwards.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)
# dbus-user-session: the user's bus, which rootless Podman and runc's systemd driver use
# to reach the user's systemd (systemd stage).
PKGS=(podman conmon containernetworking-plugins catatonit slirp4netns uidmap dbus-user-session docker.io)
D26=${RUNRS_DOCKER26_DIR:-/opt/docker-26}
here=$(cd "$(dirname "$0")" && pwd)
e2e=${RUNRS_E2E_DIR:-$here/../../../shared/e2e}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-clients: installing ${missing[*]}"
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy=1
  fi
  trap '[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  if ! "${APT[@]}" install --no-install-recommends "${missing[@]}"; then
    "${APT[@]}" update
    "${APT[@]}" install --no-install-recommends "${missing[@]}"
  fi
  [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# Rootless Podman (clients_e2e/rootless.rs): a login-less test user with subordinate
# uid and gid ranges (newuidmap/newgidmap from uidmap map them).
RL_USER=runrs-rootless
if ! id "$RL_USER" >/dev/null 2>&1; then
  echo "install-clients: adding user $RL_USER"
  useradd --create-home --shell /usr/sbin/nologin "$RL_USER"
fi
grep -q "^$RL_USER:" /etc/subuid || usermod --add-subuids 400000-465535 "$RL_USER"
grep -q "^$RL_USER:" /etc/subgid || usermod --add-subgids 400000-465535 "$RL_USER"

if "$D26/usr/sbin/dockerd" --version 2>/dev/null | grep -q 'version 26\.' &&
   "$D26/usr/bin/docker" --version 2>/dev/null | grep -q 'version 26\.'; then
  echo "install-clients: $("$D26/usr/sbin/dockerd" --version) in $D26"
  exit 0
fi
work=$(mktemp -d /tmp/install-clients.XXXXXX)
trap 'rm -rf "$work"' EXIT
mirror=$("$e2e/debian-mirror.sh")
mkdir -p "$work/lists/partial"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" \
  > "$work/sources.list"
PRIV=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
echo "install-clients: docker.io and docker-cli from trixie into $D26"
apt-get "${PRIV[@]}" update > "$work/update.log" 2>&1 || { tail -5 "$work/update.log"; exit 1; }
(cd "$work" && apt-get "${PRIV[@]}" download docker.io docker-cli)
rm -rf "$D26.new"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$D26.new"; done
"$D26.new/usr/sbin/dockerd" --version | grep -q 'version 26\.' ||
  { echo "install-clients: trixie's dockerd is not 26.x: $("$D26.new/usr/sbin/dockerd" --version)" >&2; exit 1; }
rm -rf "$D26"
mv "$D26.new" "$D26"
echo "install-clients: $("$D26/usr/sbin/dockerd" --version) in $D26"
