#!/usr/bin/env bash
# Vendored copy of shared/e2e/make-busybox-image.sh (the e2e helpers are not part of this repo);
# the integration harness prefers this copy. Keep the two in sync.
# make-busybox-image.sh OUT.tar [NAME:TAG]
# Build a single-layer OCI image archive (oci-layout + index.json + blobs/sha256)
# from the host's statically linked /bin/busybox (package busybox-static).
# The archive imports with `ctr image import OUT.tar` under NAME:TAG
# (default docker.io/library/busybox:latest) via the io.containerd.image.name annotation.
# Set ROOTFS_DIR=/some/dir to keep the unpacked rootfs (handy for runc/crun bundles).
# Output is reproducible (fixed mtimes/owners), so re-running gives the same digests.
set -euo pipefail
out=${1:?usage: $0 OUT.tar [NAME:TAG]}
name=${2:-docker.io/library/busybox:latest}
bb=${BUSYBOX:-/bin/busybox}
case $(ldd "$bb" 2>&1 || true) in *"not a dynamic executable"*) ;; *) echo "$bb is not static (install busybox-static)" >&2; exit 1;; esac

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root=${ROOTFS_DIR:-$work/rootfs}
rm -rf "$root"; mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,tmp,var/tmp,run,home}
chmod 1777 "$root/tmp" "$root/var/tmp"; chmod 700 "$root/root"
install -m 0755 "$bb" "$root/bin/busybox"
# Applet symlinks (-> /bin/busybox) in their standard dirs. Inside the chroot
# /proc is absent, so busybox uses argv[0] (/bin/busybox) as the link target.
chroot "$root" /bin/busybox --install -s
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
nogroup:x:65534:
G
echo "127.0.0.1 localhost" > "$root/etc/hosts"

# --- OCI layout by hand -----------------------------------------------------
oci=$work/oci; blobs=$oci/blobs/sha256; mkdir -p "$blobs"
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$blobs/$d"; echo "$d"; }
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 "$work/layer.tar"
layer=$(put "$work/layer.tar.gz"); lsize=$(stat -c %s "$blobs/$layer")
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
case $arch in armhf) arch=arm;; i386) arch=386;; esac
jq -cn --arg a "$arch" --arg d "sha256:$diffid" '{
  created: "1970-01-01T00:00:00Z", architecture: $a, os: "linux",
  config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"]},
  rootfs: {type: "layers", diff_ids: [$d]},
  history: [{created: "1970-01-01T00:00:00Z", created_by: "make-busybox-image.sh"}]}' > "$work/config.json"
csize=$(stat -c %s "$work/config.json"); cfg=$(put "$work/config.json")
jq -cn --arg c "sha256:$cfg" --argjson cs "$csize" --arg l "sha256:$layer" --argjson ls "$lsize" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
  layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]}' > "$work/manifest.json"
msize=$(stat -c %s "$work/manifest.json"); man=$(put "$work/manifest.json")
jq -cn --arg m "sha256:$man" --argjson ms "$msize" --arg n "$name" --arg a "$arch" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
    platform: {architecture: $a, os: "linux"},
    annotations: {"io.containerd.image.name": $n, "org.opencontainers.image.ref.name": ($n | sub(".*:"; ""))}}]}' > "$oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"
tar -C "$oci" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out" oci-layout index.json blobs
echo "wrote $out ($name, manifest sha256:$man)"
