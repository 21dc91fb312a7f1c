#!/usr/bin/env bash
# The images, built and run as a pod on this machine (what .ci/run does after `make test`):
# tools/build_images.sh, then tools/docker_pod.py. A dockerd this script had to start is
# stopped at the end, and the images it built are removed unless KEEP_IMAGES=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
started_dockerd=0
docker info >/dev/null 2>&1 || started_dockerd=1
cleanup() {
  if [ "$started_dockerd" = 1 ]; then
    [ "${KEEP_IMAGES:-0}" = 1 ] || docker image rm -f cats-dogs-other/predictor:local \
      cats-dogs-other/auth-proxy:local >/dev/null 2>&1 || true
    bash tools/stop_dockerd.sh
  fi
}
trap cleanup EXIT
SECONDS=0
bash tools/build_images.sh
"$PY" -m tools.docker_pod
echo "images built and the pod checked in $((SECONDS / 60)) min $((SECONDS % 60)) s"
