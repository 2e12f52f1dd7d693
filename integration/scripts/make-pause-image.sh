#!/usr/bin/env bash
# make-pause-image.sh OUT.tar [NAME:TAG]
# Build the pod sandbox ("pause") image of the CRI end-to-end tests: pause.c beside this
# script compiled with gcc -static, as /pause in a single-layer OCI image archive
# (Entrypoint ["/pause"]) that imports with `ctr image import` under NAME:TAG (default
# localhost/runrs/pause:1). Reproducible, like make-busybox-image.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: $0 OUT.tar [NAME:TAG]}
name=${2:-localhost/runrs/pause:1}
command -v gcc >/dev/null || { echo "make-pause-image: gcc missing (apt-get install build-essential)" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root=$work/rootfs; mkdir -p "$root"/{proc,sys,dev,etc}
gcc -static -Os -s -o "$root/pause" "$here/pause.c"
case $(ldd "$root/pause" 2>&1 || true) in *"not a dynamic executable"*) ;; *) echo "make-pause-image: pause is not static" >&2; exit 1;; esac

oci=$work/oci; blobs=$oci/blobs/sha256; mkdir -p "$blobs"
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$blobs/$d"; echo "$d"; }
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 "$work/layer.tar"
layer=$(put "$work/layer.tar.gz"); lsize=$(stat -c %s "$blobs/$layer")
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
jq -cn --arg a "$arch" --arg d "sha256:$diffid" '{
  created: "1970-01-01T00:00:00Z", architecture: $a, os: "linux",
  config: {Entrypoint: ["/pause"]},
  rootfs: {type: "layers", diff_ids: [$d]},
  history: [{created: "1970-01-01T00:00:00Z", created_by: "make-pause-image.sh"}]}' > "$work/config.json"
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
