"""The deploy workflow's logic (tools/deploy.sh), run here: kubectl is a recorder that keeps a
Deployment's revision history as the API server does (support/fake_kubectl.py), the manifests
are rendered for real, and the smoke test goes through a real proxy in front of the real
predictor with a token from a real OIDC provider. A failed rollout or smoke test rolls back to
the revision that served before and fails the job."""

from __future__ import annotations

import json
import os
import subprocess

from support import fake_kubectl
from support.oidc_provider import AUDIENCE, CLIENT, NO_SCOPE_CLIENT
from support.servers import ROOT

OLD = ["quay.io/cats-dogs-other/predictor:old", "quay.io/cats-dogs-other/auth-proxy:old"]
NEW = ["quay.io/cats-dogs-other/predictor:latest", "quay.io/cats-dogs-other/auth-proxy:latest"]


def deploy(tmp_path, provider, *, client=CLIENT, base_url=None, **state):
    """Run tools/deploy.sh on the repository's manifests; return its result and the final
    state of the recorded cluster."""
    recorder, state_file = fake_kubectl.stand_in(tmp_path, **state)
    env = {
        **os.environ,
        **recorder,
        "PYTHONPATH": str(ROOT),
        "ROLLOUT_TIMEOUT": "2m",
        "OAUTH2_ISSUER": provider.url,
        "OAUTH2_AUDIENCE": AUDIENCE,
        "OAUTH2_CLIENT_ID": client[0],
        "OAUTH2_CLIENT_SECRET": client[1],
    }
    if base_url:
        env["DEPLOY_BASE_URL"] = base_url
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "deploy.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    cluster = json.loads(state_file.read_text())
    return done, cluster


def serving(cluster) -> list[str]:
    return cluster["revisions"][str(cluster["current"])]


def verbs(cluster) -> list[str]:
    return [" ".join(call[:2]) for call in cluster["calls"]]


def running_before(**extra):
    return {"revisions": {"1": OLD}, "current": 1, **extra}


def test_a_good_deploy_stays(tmp_path, provider, oidc_proxy):
    done, cluster = deploy(tmp_path, provider, base_url=oidc_proxy.url, **running_before())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke test passed" in done.stdout
    assert serving(cluster) == NEW
    assert verbs(cluster) == [
        "get deployment/cats-dogs-other",
        "apply -k",
        "rollout status",
        "get deployment/cats-dogs-other",
    ]
    assert CLIENT[1] not in done.stdout + done.stderr


def test_a_failed_smoke_test_rolls_back_and_fails(tmp_path, provider, oidc_proxy):
    """The new revision rolls out, but its smoke test fails (the client lacks the scope)."""
    done, cluster = deploy(
        tmp_path, provider, client=NO_SCOPE_CLIENT, base_url=oidc_proxy.url, **running_before()
    )
    assert done.returncode == 1
    assert "invalid_scope" in done.stderr
    assert ["rollout", "undo", "deployment/cats-dogs-other", "--to-revision=1"] in cluster["calls"]
    assert serving(cluster) == OLD  # revision 3, made of revision 1's template
    assert cluster["current"] == 3
    assert verbs(cluster)[-3:] == [
        "rollout undo",
        "rollout status",
        "get deployment/cats-dogs-other",
    ]
    assert "rolled back" in done.stderr


def test_a_smoke_test_through_the_routes_host_that_fails_rolls_back(tmp_path, provider):
    done, cluster = deploy(tmp_path, provider, **running_before(host="cats-dogs-other.invalid"))
    assert done.returncode == 1
    assert ["get", "route", "cats-dogs-other", "-o", "jsonpath={.spec.host}"] in cluster["calls"]
    assert "https://cats-dogs-other.invalid" in done.stderr
    assert serving(cluster) == OLD


def test_a_rollout_that_does_not_complete_rolls_back_without_a_smoke_test(tmp_path, provider):
    done, cluster = deploy(tmp_path, provider, **running_before(rollouts=[False]))
    assert done.returncode == 1
    assert "the rollout did not complete within 2m" in done.stderr
    assert not [call for call in cluster["calls"] if call[:2] == ["get", "route"]]
    assert serving(cluster) == OLD


def test_a_rollback_that_does_not_complete_says_so(tmp_path, provider):
    done, cluster = deploy(tmp_path, provider, **running_before(rollouts=[False, False]))
    assert done.returncode == 1
    assert "the rollback to revision 1 did not complete either" in done.stderr
    assert verbs(cluster)[-2:] == ["rollout undo", "rollout status"]


def test_a_failed_first_deploy_has_nothing_to_roll_back_to(tmp_path, provider):
    done, cluster = deploy(tmp_path, provider, rollouts=[False])
    assert done.returncode == 1
    assert "no earlier revision to roll back to" in done.stderr
    assert not [call for call in cluster["calls"] if call[:2] == ["rollout", "undo"]]


def test_an_unchanged_deploy_that_fails_is_undone_to_what_serves(tmp_path, provider, oidc_proxy):
    """The revision looks unchanged (an apply that changed nothing, or one whose new revision
    the annotation does not show yet): undone all the same, which Kubernetes skips when the
    template already matches."""
    done, cluster = deploy(
        tmp_path,
        provider,
        client=NO_SCOPE_CLIENT,
        base_url=oidc_proxy.url,
        revisions={"1": NEW},
        current=1,
    )
    assert done.returncode == 1
    assert "rolling back to revision 1" in done.stderr
    assert verbs(cluster)[-3:] == [
        "rollout undo",
        "rollout status",
        "get deployment/cats-dogs-other",
    ]
    assert cluster["current"] == 1


def test_a_deployment_that_cannot_be_read_is_not_deployed_over(tmp_path, provider):
    done, cluster = deploy(tmp_path, provider, **running_before(forbidden=True))
    assert done.returncode == 1
    assert "Forbidden" in done.stderr
    assert "cannot read deployment/cats-dogs-other; nothing was applied" in done.stderr
    assert verbs(cluster) == ["get deployment/cats-dogs-other"]


def test_a_rollback_kubectl_refuses_says_so(tmp_path, provider):
    done, cluster = deploy(
        tmp_path, provider, **running_before(rollouts=[False], undo_refused=True)
    )
    assert done.returncode == 1
    assert "the rollback to revision 1 failed" in done.stderr
    assert verbs(cluster)[-1] == "rollout undo"
