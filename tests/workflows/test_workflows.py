"""The jobs of .github/workflows/ run by nektos/act on a clean clone, as GitHub's runner runs
them (support/act.py): a user with passwordless sudo, every `run:` step of ours as written,
the third-party actions as local stand-ins. `make workflows` runs this module (it is not part
of `make test`, which the `test` job runs); JOBS picks jobs.

The deploy job runs against a stand-in cluster: kubectl is the recorder that keeps a
Deployment's revision history (support/fake_kubectl.py), the smoke test goes through a real
proxy in front of the real predictor with a token from a real OIDC provider. Once it rolls out;
once its smoke test fails and it rolls back.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support import act, fake_kubectl
from support.oidc_provider import AUDIENCE, CLIENT, NO_SCOPE_CLIENT

SELECTED = set(os.environ.get("JOBS", "").split())
OLD = ["quay.io/cats-dogs-other/predictor:old", "quay.io/cats-dogs-other/auth-proxy:old"]
# What ci.yaml's images job pushes to and the deploy job then serves (the workflow's default).
IMAGE_REPOSITORY = "quay.io/cats-dogs-other"
MINUTES = 60


def wanted(job: str) -> None:
    if SELECTED and job not in SELECTED:
        pytest.skip(f"JOBS={' '.join(sorted(SELECTED))}")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    act.place_python(Path.home() / ".cache" / "act" / "tool_cache")
    return act.clean_clone(tmp_path_factory.mktemp("workflows") / "clone")


def show(run: act.Run, log: Path) -> str:
    return f"act exited {run.returncode}; log {log}:\n{run.output[-6000:]}"


def test_the_runner_is_a_user_with_passwordless_sudo():
    """GitHub's runner is not root, and may sudo: the jobs must pass there, not only as root."""
    assert os.geteuid() != 0, "run `make workflows` as a non-root user (as root it makes one)"
    assert subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.timeout(46 * MINUTES)
@pytest.mark.parametrize("job", ["lint", "unit", "test"])
def test_a_ci_job_passes(job, clone, tmp_path):
    wanted(job)
    log = tmp_path / f"{job}.log"
    run = act.act(
        clone,
        "ci.yaml",
        "pull_request",
        job,
        event_payload=pull_request(),
        log=log,
        timeout=45 * MINUTES,
    )
    assert run.returncode == 0, show(run, log)
    assert "Python 3.11" in run.output  # the setup-python stand-in found the tool cache's
    if job in ("unit", "test"):
        line = act.summary_line(run.output)
        assert line and " passed" in line and "failed" not in line, show(run, log)
        print(f"{job}: {line}")  # the suite's own closing line, for whoever reads this run


@pytest.mark.timeout(41 * MINUTES)
def test_the_images_job_builds_both_images(clone, tmp_path):
    wanted("images")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine this user can reach: the images job needs one")
    log = tmp_path / "images.log"
    run = act.act(
        clone,
        "ci.yaml",
        "pull_request",
        "images",
        event_payload=pull_request(),
        # No registry here: the base image tools/build_images.sh makes from Debian's packages.
        variables={"BASE_IMAGE": os.environ.get("BASE_IMAGE", "cats-dogs-other/base:bookworm")},
        log=log,
        timeout=40 * MINUTES,
    )
    assert run.returncode == 0, show(run, log)
    sha = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    for target in ("predictor", "auth-proxy"):
        assert "Success - Main Build " + target in run.output, show(run, log)
        inspected = subprocess.run(["docker", "image", "inspect", f"{target}:{sha}"])
        assert inspected.returncode == 0, f"{target}:{sha} was not built"
        subprocess.run(["docker", "image", "rm", f"{target}:{sha}"], capture_output=True)


def pull_request() -> dict:
    """A pull request event: ci's push to quay.io is for pushes to main only."""
    return {"pull_request": {"number": 1, "head": {"ref": "change"}, "base": {"ref": "main"}}}


# -- the deploy job --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """Where the deploy job finds the run to serve: `mlflow server` with its artifacts on
    moto's S3 (credentials checked), one FINISHED run of the experiment the course logs to."""
    import mlflow

    from support.contract_model import build_contract_model
    from support.storage import start_mlflow, start_s3

    workdir = tmp_path_factory.mktemp("mlflow")
    s3 = start_s3(workdir, with_auth=True)
    s3.client().create_bucket(Bucket="mlflow")
    server = start_mlflow(workdir, s3, "mlflow")
    try:
        model = workdir / "model.keras"
        build_contract_model(model)
        client = mlflow.MlflowClient(tracking_uri=server.url)
        saved = {k: os.environ.get(k) for k in s3.env()}
        os.environ.update(s3.env())  # the client logs the artifact straight to S3
        try:
            run = client.create_run(client.create_experiment("cats-dogs-other"))
            client.log_artifact(run.info.run_id, str(model), "model/data")
            client.set_terminated(run.info.run_id, "FINISHED")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        yield {"s3": s3, "mlflow": server, "run_id": run.info.run_id}
    finally:
        server.stop()
        s3.stop()


def deploy(clone, folder, provider, oidc_proxy, store, client, event, payload):
    env, state_file = fake_kubectl.stand_in(folder, revisions={"1": OLD}, current=1)
    log = folder / "deploy.log"
    s3 = store["s3"]
    run = act.act(
        clone,
        "deploy.yaml",
        event,
        "deploy",
        event_payload=payload,
        secrets={
            "OPENSHIFT_SERVER": "https://api.stand-in.invalid:6443",
            "OPENSHIFT_TOKEN": "sha256~stand-in-token-never-printed",
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "OAUTH2_CLIENT_ID": client[0],
            "OAUTH2_CLIENT_SECRET": client[1],
        },
        variables={
            "OPENSHIFT_NAMESPACE": "cats-dogs-other",
            "MLFLOW_TRACKING_URI": store["mlflow"].url,
            "MLFLOW_S3_ENDPOINT_URL": s3.url,
            "OAUTH2_ISSUER": provider.url,
            "OAUTH2_AUDIENCE": AUDIENCE,
            # The test issuer's clients authenticate with HTTP Basic; the workflow's default is
            # `post`, as Auth0's applications do.
            "OAUTH2_CLIENT_AUTH": "basic",
        },
        # The Route's https host is the stand-in's; the smoke test goes to the real proxy.
        env={**env, "DEPLOY_BASE_URL": oidc_proxy.url},
        log=log,
        timeout=20 * MINUTES,
    )
    return run, json.loads(state_file.read_text()), log


def ci_succeeded_on_main(sha: str) -> dict:
    """What GitHub sends the deploy workflow when ci passed on a push to main."""
    return {
        "workflow_run": {
            "conclusion": "success",
            "event": "push",
            "head_sha": sha,
            "head_repository": {"full_name": act.REPOSITORY},
        },
        "repository": {"full_name": act.REPOSITORY},
    }


def commit(clone: Path) -> str:
    done = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True)
    return done.stdout.decode().strip()


def never_printed(run: act.Run, state: dict, *secrets: str) -> None:
    """No secret in the job's output (act runs with --insecure-secrets: it masks nothing) nor
    on any kubectl command line the job ran."""
    command_lines = json.dumps(state["calls"])
    for secret in ("stand-in-token-never-printed", *secrets):
        assert secret not in run.output
        assert secret not in command_lines


@pytest.mark.timeout(21 * MINUTES)
def test_the_deploy_job_rolls_out_this_commit(clone, tmp_path, provider, oidc_proxy, mlflow_store):
    """After ci passed on a push to main: the newest FINISHED run is resolved from MLflow and
    pinned, this commit's images applied, the smoke test passes, nothing is rolled back."""
    wanted("deploy")
    sha = commit(clone)
    run, state, log = deploy(
        clone,
        tmp_path,
        provider,
        oidc_proxy,
        mlflow_store,
        CLIENT,
        "workflow_run",
        ci_succeeded_on_main(sha),
    )
    assert run.returncode == 0, show(run, log)
    assert state["revisions"][str(state["current"])] == [
        f"{IMAGE_REPOSITORY}/predictor:{sha}",
        f"{IMAGE_REPOSITORY}/auth-proxy:{sha}",
    ]
    assert state["current"] == 2
    assert state["applied"] == [
        {
            "kind": "Secret",
            "name": "cats-dogs-other-s3",
            "keys": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        }
    ]
    assert f"serving runs:/{mlflow_store['run_id']}/model/data/model.keras" in run.output
    assert "smoke test passed" in run.output
    assert "rollout undo" not in " ".join(" ".join(c) for c in state["calls"])
    never_printed(run, state, CLIENT[1], mlflow_store["s3"].secret_key)


@pytest.mark.timeout(21 * MINUTES)
def test_the_deploy_job_rolls_back_when_the_smoke_test_fails(
    clone, tmp_path, provider, oidc_proxy, mlflow_store
):
    """A manual deploy of a run (pinned to its .keras file) whose smoke test fails: a client
    without the prediction scope, so the inference is refused; the job puts revision 1's
    template back, waits for it, and fails."""
    wanted("deploy")
    run, state, log = deploy(
        clone,
        tmp_path,
        provider,
        oidc_proxy,
        mlflow_store,
        NO_SCOPE_CLIENT,
        "workflow_dispatch",
        {"inputs": {"model_uri": f"runs:/{mlflow_store['run_id']}/model"}},
    )
    assert run.returncode != 0, show(run, log)
    assert "Job failed" in run.output
    assert state["revisions"][str(state["current"])] == OLD  # what served before serves again
    verbs = [" ".join(call[:2]) for call in state["calls"]]
    undo = verbs.index("rollout undo")
    assert verbs[undo - 2 : undo + 2] == [
        "apply -k",
        "rollout status",
        "rollout undo",
        "rollout status",
    ]
    assert "invalid_scope" in run.output  # the smoke test's token request was refused
    assert "deploy: rolling back to revision 1" in run.output
    assert "rolled back" in run.output
    assert f"serving runs:/{mlflow_store['run_id']}/model/data/model.keras" in run.output
    never_printed(run, state, NO_SCOPE_CLIENT[1], mlflow_store["s3"].secret_key)
