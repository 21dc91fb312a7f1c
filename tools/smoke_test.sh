#!/usr/bin/env bash
# The deploy workflow's smoke test, as a script the test suite runs too (against a local proxy
# and a real OIDC provider): tools/smoke_test.sh <base URL of the proxy's REST door>
#
# Probes need no token; a request without one is refused; with OAUTH2_CLIENT_ID and
# OAUTH2_CLIENT_SECRET set (and OAUTH2_ISSUER, OAUTH2_AUDIENCE), a token from the issuer's
# client-credentials grant (tools/oauth2_token.py; its token endpoint on the issuer's origin, or
# OAUTH2_TOKEN_URL) classifies the course's cat.
set -euo pipefail
base="${1:?usage: tools/smoke_test.sh <base URL>}"
base="${base%/}"
here="$(cd "$(dirname "$0")/.." && pwd)"

curl -sS --fail-with-body "$base/health"; echo
curl -sS --fail-with-body "$base/v2/models/cats-dogs-other/ready"; echo
status="$(curl -sS -o /dev/null -w '%{http_code}' -F "file=@$here/tests/fixtures/cat.png" "$base/upload")"
if [ "$status" != 401 ]; then
  echo "smoke test: /upload without a token answered $status, not 401" >&2
  exit 1
fi
if [ -z "${OAUTH2_CLIENT_ID:-}" ] && [ -z "${OAUTH2_CLIENT_SECRET:-}" ]; then
  echo "no OAUTH2_CLIENT_ID / OAUTH2_CLIENT_SECRET: authenticated smoke test skipped"
  exit 0
fi
# Exits 2 naming what is missing, 1 on a refusal (set -e ends here); prints the token only if it
# is one header-safe line (RFC 6750 b64token), so it cannot add a header below.
token="$(python3 "$here/tools/oauth2_token.py")"
# The token goes to curl on stdin (a header file), not on its command line.
answer="$(printf 'Authorization: Bearer %s\n' "$token" | curl -sS --fail-with-body -H @- \
  -F "file=@$here/tests/fixtures/cat.png" "$base/upload")"
echo "$answer"
case "$answer" in
  *'"prediction"'*) echo "smoke test passed" ;;
  *) echo "smoke test: no prediction in the answer" >&2; exit 1 ;;
esac
