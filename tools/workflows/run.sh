#!/usr/bin/env bash
# `make workflows [JOBS="deploy ..."]`: the jobs of .github/workflows/ run by nektos/act on a
# clean clone of HEAD, as GitHub's runner runs them (tests/workflows/, support/act.py).
#
# As a non-root user with passwordless sudo (GitHub's runner's situation): runs them.
# As root (CI on this machine): makes such a user, `runner`, as on GitHub; where the images job
# is to run and Docker can, starts dockerd, lets the user reach it (the docker group, as on
# GitHub) and builds the base image that job builds on (no registry here: tools/build_images.sh
# makes it from Debian's packages); then runs this again as that user in a clone of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs="${*:-}"
wants() { [ -z "$jobs" ] || [[ " $jobs " == *" $1 "* ]]; }

if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "make workflows runs as GitHub's runner does: a user with passwordless sudo" \
      "(sudo -n true failed for $(id -un))" >&2
    exit 1
  fi
  make --no-print-directory .venv/.workflow-tools-installed
  # -s: each job's own closing line (the suite's "N passed" in the test job) is printed here.
  JOBS="$jobs" WORKFLOWS=1 exec .venv/bin/python -m pytest tests/workflows -v -s -rs \
    -p no:cacheprovider
fi

user=runner
# Root changes the machine: a user with passwordless sudo, in the docker group. Only where that
# is the point (CI=true, as .ci/run and GitHub set it, or WORKFLOWS_MAKE_RUNNER=1), and only a
# user this script made (its sudoers file marks it), never an account that was already there.
if [ "${CI:-}" != true ] && [ "${WORKFLOWS_MAKE_RUNNER:-}" != 1 ]; then
  echo "as root, make workflows would create a user with passwordless sudo ($user): run it as" \
    "a user with sudo, or set WORKFLOWS_MAKE_RUNNER=1 (CI=true does) to let it" >&2
  exit 1
fi
head="$(git rev-parse HEAD)"  # before anything changes: a checkout git refuses stops here
sudoers=/etc/sudoers.d/90-cats-dogs-other-runner
if id -u "$user" >/dev/null 2>&1 && [ ! -f "$sudoers" ]; then
  echo "a user $user exists and was not made by make workflows: not touching it" >&2
  exit 1
fi
command -v sudo >/dev/null || { apt-get update -qq && apt-get install -y -qq sudo >/dev/null; }
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
rule="$(mktemp)"
echo "$user ALL=(ALL) NOPASSWD:ALL" >"$rule"
visudo -cqf "$rule" && install -m 440 "$rule" "$sudoers"
rm -f "$rule"
home="$(getent passwd "$user" | cut -d: -f6)"
work="$home/cats-dogs-other"
rm -rf "$work"
git clone --quiet --no-hardlinks "$PWD" "$work"
git -C "$work" checkout --quiet -B main "$head"

trap 'bash tools/stop_dockerd.sh' EXIT  # the dockerd build_images.sh starts, if it does
if wants images; then
  BASE_ONLY=1 bash tools/build_images.sh
  getent group docker >/dev/null || groupadd docker
  usermod -aG docker "$user"
  chgrp docker /var/run/docker.sock && chmod g+rw /var/run/docker.sock
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    # This machine's extra CAs (a TLS-inspecting proxy's) for pip in the build stages, as
    # tools/build_images.sh hands them; the images never carry them.
    mkdir -p "$work/build-ca" && cp /etc/ssl/certs/ca-certificates.crt "$work/build-ca/ca.crt"
  fi
fi
chown -R "$user:" "$work"

echo "running the workflows as $user (uid $(id -u "$user"), passwordless sudo) in $work"
# A runner's own environment, as on GitHub: its PATH and HOME, CI, and what reaches the package
# registries here (proxies, CA bundles, pip's and npm's settings); none of root's credentials.
keep=(CI LANG TZ)
while IFS='=' read -r name _; do
  case "$name" in
    PIP_* | NPM_CONFIG_* | npm_config_* | *_PROXY | *_proxy | *_CA_BUNDLE | *_CA_CERTS | \
      SSL_CERT_* | PIP_CERT | GIT_SSL_CAINFO | GRPC_DEFAULT_SSL_ROOTS_FILE_PATH) keep+=("$name") ;;
  esac
done < <(env)
passed=()
for name in "${keep[@]}"; do [ -n "${!name+x}" ] && passed+=("$name=${!name}"); done
status=0
sudo -u "$user" -H env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${passed[@]}" \
  make -C "$work" workflows JOBS="$jobs" || status=$?
exit "$status"
