#!/usr/bin/env bash
# The deploy workflow's last step, as a script the tests run (tests/operations/test_deploy.py,
# with a kubectl that records its calls and the smoke test against a real pod):
#
#   tools/deploy.sh [kustomization directory, default .]
#
# Applies the manifests, waits for the Deployment's rollout, smoke-tests through the Route
# (tools/smoke_test.sh). When any step fails, the Deployment goes back to the revision that
# served before (`kubectl rollout undo --to-revision`), the script waits for that rollout and
# exits 1: a failed deploy never stays in place. The rollback restores the previous pod
# template: its images and its ConfigMap (hash-named, so the old one is still there).
#
# Environment: ROLLOUT_TIMEOUT (default 15m); DEPLOY_BASE_URL (default https://<the Route's
# host>); OAUTH2_* for the smoke test's token (see tools/smoke_test.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
manifests="${1:-.}"
deployment=deployment/cats-dogs-other
timeout="${ROLLOUT_TIMEOUT:-15m}"

revision() {
  # Empty when there is no Deployment yet; any other failure (no access, no API server) stops
  # the deploy before it changes anything.
  kubectl get "$deployment" --ignore-not-found \
    -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}'
}

if ! previous="$(revision)"; then
  echo "deploy: cannot read $deployment; nothing was applied" >&2
  exit 1
fi
echo "deploy: revision serving before: ${previous:-none (first deploy)}"

roll_back() {
  echo "deploy: FAILED: $1" >&2
  if [ -z "$previous" ]; then
    echo "deploy: no earlier revision to roll back to (first deploy)" >&2
    exit 1
  fi
  # Always undone, even when the revision looks unchanged: its annotation lags a partial apply,
  # and undoing to the template already serving is a no-op ("skipped rollback").
  echo "deploy: rolling back to revision $previous" >&2
  if ! kubectl rollout undo "$deployment" --to-revision="$previous"; then
    echo "deploy: the rollback to revision $previous failed" >&2
    exit 1
  fi
  if ! kubectl rollout status "$deployment" --timeout="$timeout"; then
    echo "deploy: the rollback to revision $previous did not complete either" >&2
    exit 1
  fi
  echo "deploy: rolled back; revision $(revision || true) serves what revision $previous served" >&2
  exit 1
}

kubectl apply -k "$manifests" || roll_back "kubectl apply -k $manifests"
kubectl rollout status "$deployment" --timeout="$timeout" ||
  roll_back "the rollout did not complete within $timeout"
base="${DEPLOY_BASE_URL:-}"
if [ -z "$base" ]; then
  host="$(kubectl get route cats-dogs-other -o jsonpath='{.spec.host}')" ||
    roll_back "cannot read the Route's host"
  base="https://${host}"
fi
bash "$here/tools/smoke_test.sh" "$base" || roll_back "the smoke test through $base"
echo "deploy: revision $(revision) is serving"
