#!/usr/bin/env bash
# What `make test` needs beyond Python and kubectl (`make serve` and `make unit` need none of it):
#   node        Node.js >= 20.12 and npm: the OIDC provider the proxy's token tests run against
#   prometheus  Prometheus and promtool: the alert tests and the scrape of the pod
#   browser     a Chromium-based browser: the browser test (Playwright cannot download its own)
#
#   bash tools/install_test_tools.sh [node] [prometheus] [browser]     # default: all three
#
# Each one found on PATH is used as it is. What is missing is installed with apt-get where apt
# offers a version that will do, as root or with sudo (without a password, as on GitHub's runner,
# or asking for it at a terminal); anything else gets one line saying what to install by hand,
# and the script fails.
set -euo pipefail

# The browsers the browser test looks for, in this order (tests/browser/conftest.py).
BROWSERS=(chromium google-chrome-stable google-chrome chromium-browser)
[ $# -gt 0 ] || set -- node prometheus browser
wanted=("$@")
for tool in "${wanted[@]}"; do
  case "$tool" in node | prometheus | browser) ;; *) echo "unknown tool: $tool" >&2; exit 2 ;; esac
done

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 20 || (a == 20 && b >= 12) ? 0 : 1)'
}
browser() {
  local name
  for name in "${BROWSERS[@]}"; do command -v "$name" && return 0; done
  return 1
}
present() {
  case "$1" in
    node) node_ok ;;
    prometheus) command -v promtool >/dev/null && command -v prometheus >/dev/null ;;
    browser) browser >/dev/null ;;
  esac
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif sudo -n true 2>/dev/null; then sudo -n "$@"; else sudo "$@"; fi
}
can_apt() {
  command -v apt-get >/dev/null || return 1
  [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null || { [ -t 0 ] && command -v sudo >/dev/null; }
}
candidate() {  # the version apt would install, or nothing
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}'
}
by_hand() {
  case "$1" in
    node) echo "Node.js >= 20.12 with npm (your distribution's is older: nodejs.org or nvm)" ;;
    prometheus) echo "Prometheus with promtool (prometheus.io/download)" ;;
    browser) echo "Chromium or Google Chrome (${BROWSERS[*]} on PATH)" ;;
  esac
}

missing=()
for tool in "${wanted[@]}"; do present "$tool" || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || {
  problems=()
  packages=()
  if can_apt; then
    echo "looking for ${missing[*]} in apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    for tool in "${missing[@]}"; do
      case "$tool" in
        node)
          version="$(candidate nodejs)"
          major="${version#*:}" major="${major%%.*}" minor="${version#*.}" minor="${minor%%.*}"
          if [ -n "$version" ] && { [ "$major" -gt 20 ] || { [ "$major" = 20 ] && [ "$minor" -ge 12 ]; }; }; then
            packages+=(nodejs npm)
          else problems+=("$tool"); fi ;;
        prometheus) if [ -n "$(candidate prometheus)" ]; then packages+=(prometheus); else problems+=("$tool"); fi ;;
        browser) if [ -n "$(candidate chromium)" ]; then packages+=(chromium); else problems+=("$tool"); fi ;;
      esac
    done
    if [ ${#packages[@]} -gt 0 ]; then
      echo "installing ${packages[*]} with apt-get"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
      # The package starts a system-wide Prometheus where systemd runs: the tests start their own.
      if [[ " ${packages[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null &&
        systemctl is-active --quiet prometheus 2>/dev/null; then
        as_root systemctl disable --now --quiet prometheus || true
      fi
    fi
  else
    problems=("${missing[@]}")
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    for tool in "${problems[@]}"; do
      echo "make test needs $(by_hand "$tool"): install it by hand (README: prerequisites)" >&2
    done
    exit 1
  fi
}
for tool in "${wanted[@]}"; do
  present "$tool" || { echo "$tool is still missing after apt-get: $(by_hand "$tool")" >&2; exit 1; }
done
echo "test tools: ${wanted[*]} present"
