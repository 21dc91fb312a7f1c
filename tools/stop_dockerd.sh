#!/usr/bin/env bash
# Stop the dockerd tools/build_images.sh started (its PID is in $WORK/dockerd.pid), and no other.
set -euo pipefail
pidfile="${WORK:-/var/tmp/cats-dogs-other-build}/dockerd.pid"
[ -f "$pidfile" ] || exit 0
pid="$(cat "$pidfile")"
rm -f "$pidfile"
if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
  kill "$pid"
  for _ in $(seq 30); do [ -d "/proc/$pid" ] || break; sleep 1; done
  echo "stopped dockerd"
fi
