"""The predictor fetches its model from where the course's pipeline puts it: S3 and MLflow.

Real servers: moto's S3 server (credentials checked) and `mlflow server` with its artifacts on
a bucket of it. The fixture logs a run the course's way (`model/data/model.keras`), registers a
version with an alias, and leaves a newer FAILED run holding another model: every URI form must
serve the good model, so the predictor gives the same answer for the same image.
"""

from __future__ import annotations

import hashlib
import os
import time

import httpx
import numpy as np
import pytest

from predictor.sources import ModelSourceError, resolve
from support.clients import INFER, MODEL, json_request, values_of
from support.contract_model import build_contract_model
from support.images import rgb_jpeg
from support.servers import start_predictor, wait_exit, wait_ready
from support.storage import start_mlflow, start_s3

PHOTO = rgb_jpeg(seed=11)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """S3 + MLflow, filled as the course's training leaves them."""
    import mlflow

    workdir = tmp_path_factory.mktemp("store")
    s3 = start_s3(workdir, with_auth=True)
    s3.client().create_bucket(Bucket="mlflow")
    s3.client().create_bucket(Bucket="models")
    server = start_mlflow(workdir, s3, "mlflow")
    saved = {k: os.environ.get(k) for k in (*s3.env(), "MLFLOW_TRACKING_URI")}
    os.environ.update({**s3.env(), "MLFLOW_TRACKING_URI": server.url})
    try:
        good, other = workdir / "good" / "model.keras", workdir / "other" / "model.keras"
        good.parent.mkdir()
        other.parent.mkdir()
        build_contract_model(good, seed=1)
        build_contract_model(other, seed=2)
        client = mlflow.MlflowClient()
        experiment = client.create_experiment("cats-dogs-other")
        run = client.create_run(experiment)
        client.log_artifact(run.info.run_id, str(good), "model/data")
        client.set_terminated(run.info.run_id, "FINISHED")
        time.sleep(0.05)
        failed = client.create_run(experiment)  # newer, holds another model, but FAILED
        client.log_artifact(failed.info.run_id, str(other), "model/data")
        client.set_terminated(failed.info.run_id, "FAILED")
        client.create_registered_model("cats-dogs-other")
        version = client.create_model_version(
            "cats-dogs-other", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        client.set_registered_model_alias("cats-dogs-other", "champion", version.version)
        empty = client.create_experiment("never-finished")
        client.set_terminated(client.create_run(empty).info.run_id, "FAILED")
        s3.client().upload_file(str(good), "models", "prod/final_model.keras")
        s3.client().put_object(Bucket="models", Key="broken/final_model.keras", Body=b"not zip")
        yield {
            "s3": s3,
            "mlflow": server,
            "run_id": run.info.run_id,
            "failed_run_id": failed.info.run_id,
            "good": good,
            "sha256": hashlib.sha256(good.read_bytes()).hexdigest(),
            "env": {**s3.env(), "MLFLOW_TRACKING_URI": server.url},
            "workdir": workdir,
        }
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()
        s3.stop()


def uri_forms(store) -> dict[str, str]:
    run_id = store["run_id"]
    return {
        "local file": str(store["good"]),
        "local folder": str(store["good"].parent),
        "s3 key": "s3://models/prod/final_model.keras",
        "s3 prefix": "s3://models/prod/",
        "run artifact (the course's form)": f"runs:/{run_id}/model/data/model.keras",
        "run model": f"runs:/{run_id}",
        "registry version": "models:/cats-dogs-other/1",
        "registry alias": "models:/cats-dogs-other@champion",
        "newest finished run": "mlflow-experiment:cats-dogs-other",
    }


@pytest.fixture(scope="module")
def served(store, tmp_path_factory):
    """One predictor per URI form, all started at once, each with its own cache."""
    logs = tmp_path_factory.mktemp("source-logs")
    processes = {
        form: start_predictor(
            uri,
            logs,
            MODEL_CACHE_DIR=str(logs / f"cache-{n}"),
            **store["env"],
        )
        for n, (form, uri) in enumerate(uri_forms(store).items())
    }
    try:
        yield {form: wait_ready(process, timeout=300) for form, process in processes.items()}
    finally:
        for process in processes.values():
            process.stop()


FORMS = [
    "local file",
    "local folder",
    "s3 key",
    "s3 prefix",
    "run artifact (the course's form)",
    "run model",
    "registry version",
    "registry alias",
    "newest finished run",
]


@pytest.mark.parametrize("form", FORMS)
def test_every_uri_form_serves_the_good_model(store, served, form):
    import keras

    from predictor.imaging import ImageLimits, decode_image

    process = served[form]
    expected = keras.models.load_model(store["good"]).predict(
        decode_image(PHOTO, ImageLimits())[np.newaxis], verbose=0
    )
    response = httpx.post(process.url + INFER, json=json_request([PHOTO]), timeout=60)
    assert response.status_code == 200
    np.testing.assert_allclose(values_of(response.json())[1], expected, atol=1e-5, rtol=0)

    metadata = httpx.get(f"{process.url}/v2/models/{MODEL}").json()
    facts = metadata["parameters"]
    assert facts["uri"] == uri_forms(store)[form]
    assert facts["sha256"] == store["sha256"]
    assert metadata["versions"] == [store["sha256"][:12]]
    if form.startswith(("run", "registry", "newest")):
        assert facts["run_id"] == store["run_id"]  # never the newer FAILED run
        assert facts["location"].startswith(f"s3://mlflow/1/{store['run_id']}/artifacts/")
    if form.startswith("registry"):
        assert facts["registry_version"] == "cats-dogs-other/1"
    assert sum("loaded and warmed up" in line for line in process.log().splitlines()) == 1
    assert store["s3"].secret_key not in process.log()


def test_a_cached_model_is_reused_and_no_partial_file_is_left(store, tmp_path):
    cache = tmp_path / "cache"
    first = resolve("s3://models/prod/final_model.keras", cache)
    second = resolve("s3://models/prod/final_model.keras", cache)
    assert not first.from_cache
    assert second.from_cache
    assert second.path == first.path
    assert [p.name for p in cache.iterdir()] == [first.path.name]


def test_a_changed_object_is_fetched_again(store, tmp_path):
    s3 = store["s3"].client()
    s3.upload_file(str(store["good"]), "models", "moving/final_model.keras")
    first = resolve("s3://models/moving/final_model.keras", tmp_path)
    s3.put_object(Bucket="models", Key="moving/final_model.keras", Body=b"changed")
    second = resolve("s3://models/moving/final_model.keras", tmp_path)
    assert second.path != first.path
    assert not second.from_cache
    assert second.sha256 == hashlib.sha256(b"changed").hexdigest()


PERMANENT = {
    "no such bucket": ("s3://no-such-bucket/prefix/", "no such bucket: s3://no-such-bucket/"),
    "no such key": ("s3://models/prod/missing.keras", "no such object: s3://models/prod/missing"),
    "no .keras under the prefix": ("s3://models/nothing-here/", "no .keras object under"),
    "no such run": ("runs:/0123456789abcdef0123456789abcdef", "looking up the run"),
    "no such version": ("models:/cats-dogs-other/99", "looking up version 99 of cats-dogs-other"),
    "no such alias": ("models:/cats-dogs-other@nobody", "looking up alias nobody"),
    "no such experiment": ("mlflow-experiment:no-such", "no MLflow experiment named 'no-such'"),
    "an experiment with no finished run": (
        "mlflow-experiment:never-finished",
        "has no FINISHED run holding a model",
    ),
    "unsupported scheme": ("gs://bucket/model.keras", "unsupported model URI scheme"),
    "missing local file": (
        "/no/such/model.keras",
        "model path /no/such/model.keras does not exist",
    ),
}


@pytest.mark.parametrize("case", list(PERMANENT))
def test_permanent_failures_are_not_retried_and_name_the_cause(store, tmp_path, case):
    uri, message = PERMANENT[case]
    started = time.monotonic()
    with pytest.raises(ModelSourceError) as error:
        resolve(uri, tmp_path, give_up_after=60)
    assert message in str(error.value)
    assert time.monotonic() - started < 10, "a permanent failure was retried"


def test_wrong_credentials_are_permanent(store, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(ModelSourceError) as error:
        resolve("s3://models/prod/", tmp_path, give_up_after=60)
    assert "access denied" in str(error.value)
    assert "wrong-secret" not in str(error.value)


@pytest.mark.parametrize(
    ("uri", "env_change", "message"),
    [
        (
            "s3://models/prod/final_model.keras",
            {"AWS_SECRET_ACCESS_KEY": "wrong-secret"},
            "access denied",
        ),
        ("runs:/0123456789abcdef0123456789abcdef", {}, "looking up the run"),
        ("s3://models/broken/final_model.keras", {}, "is not a loadable Keras model"),
    ],
    ids=["wrong credentials", "no such run", "not a Keras file"],
)
def test_the_process_ends_with_code_1_and_one_line_naming_cause_and_uri(
    store, tmp_path, uri, env_change, message
):
    env = {**store["env"], **env_change, "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    process = start_predictor(uri, tmp_path, **env)
    assert wait_exit(process) == 1
    errors = [line for line in process.log().splitlines() if " ERROR " in line]
    assert len(errors) == 1, process.log()[-2000:]
    assert message in errors[0]
    assert uri in errors[0]
    for secret in (store["s3"].secret_key, "wrong-secret"):
        assert secret not in process.log()


def test_s3_down_at_start_up_is_retried_then_the_model_loads(store, tmp_path):
    s3 = start_s3(tmp_path, with_auth=False)
    port = s3.port
    s3.client().create_bucket(Bucket="models")
    s3.client().upload_file(str(store["good"]), "models", "m/final_model.keras")
    s3.stop()  # killed before the predictor starts fetching
    env = {**s3.env(), "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    process = start_predictor("s3://models/m/final_model.keras", tmp_path, **env)
    try:
        deadline = time.monotonic() + 120
        while "retrying in" not in process.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "unreachable" in process.log()
        assert httpx.get(f"{process.url}/v2/models/{MODEL}/ready").status_code == 503
        revived = start_s3(tmp_path, with_auth=False, port=port)
        revived.client().create_bucket(Bucket="models")
        revived.client().upload_file(str(store["good"]), "models", "m/final_model.keras")
        wait_ready(process, timeout=120)
        revived.stop()
    finally:
        process.stop()


def test_s3_that_stays_down_is_given_up_on_after_the_fetch_timeout(tmp_path):
    from support.servers import free_port

    env = {
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }
    process = start_predictor(
        "s3://models/m/final_model.keras", tmp_path, "--model_fetch_timeout", "5", **env
    )
    assert wait_exit(process) == 1
    log = process.log()
    assert log.count("retrying in") >= 2
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "gave up after 5 s of retries" in errors[0]
    assert "s3://models/m/final_model.keras" in errors[0]
