#!/usr/bin/env bash
# Build both targets of the Dockerfile on this machine, where no registry can be reached.
#
#   bash tools/build_images.sh            # -> cats-dogs-other/predictor:local, .../auth-proxy:local
#   BASE_ONLY=1 bash tools/build_images.sh   # steps 1 and 2 only
#
# 1. Starts dockerd if none answers (Debian's docker.io; installed if missing).
# 2. Makes a Debian bookworm base image from Debian's own packages with debootstrap (python3,
#    python3-venv, ca-certificates), from the mirror this machine's apt already uses (read from
#    its sources at run time), and `docker import`s it: cats-dogs-other/base:bookworm.
# 3. If this machine trusts extra CAs (/usr/local/share/ca-certificates, e.g. a TLS-inspecting
#    proxy's), hands its CA bundle to the build as build-ca/ca.crt: pip uses it in the build
#    stages only, the final images never carry it, and the folder is removed afterwards.
# 4. Builds both targets with BASE_IMAGE set to that base, and prints their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=cats-dogs-other/base:bookworm
TAG=${TAG:-local}
WORK=${WORK:-/var/tmp/cats-dogs-other-build}
SECONDS=0

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need dockerd docker.io
need debootstrap debootstrap

if ! docker info >/dev/null 2>&1; then
  mkdir -p "$WORK"
  dockerd >"$WORK/dockerd.log" 2>&1 &
  echo $! >"$WORK/dockerd.pid"  # the one to stop afterwards (tools/stop_dockerd.sh)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; exit 1; }
  echo "started dockerd (log: $WORK/dockerd.log)"
fi

mirror() {
  # The first Debian mirror of apt's sources: deb822 (.sources) or one-line format.
  local files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit} /^deb / && $2 ~ /debian\/?$/ {print $2; exit}' \
    "${files[@]}" 2>/dev/null | head -n 1
}

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  url=$(mirror)
  [ -n "$url" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  echo "debootstrap bookworm from $url"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$url" >"$WORK/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$rootfs"
  echo "base image $BASE made in ${SECONDS}s"
fi

[ "${BASE_ONLY:-0}" = 1 ] && exit 0  # the base alone (tools/workflows/run.sh: the images job)

rm -rf build-ca
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p build-ca
  cp /etc/ssl/certs/ca-certificates.crt build-ca/ca.crt
  trap 'rm -rf build-ca' EXIT
fi

for target in auth-proxy predictor; do
  start=$SECONDS
  docker build --network host --build-arg "BASE_IMAGE=$BASE" --target "$target" \
    -t "cats-dogs-other/$target:$TAG" . >"$WORK/build-$target.log" 2>&1 \
    || { tail -40 "$WORK/build-$target.log"; exit 1; }
  echo "built cats-dogs-other/$target:$TAG in $((SECONDS - start))s"
done
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^cats-dogs-other/'
