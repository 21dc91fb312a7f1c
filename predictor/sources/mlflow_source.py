"""Models logged to MLflow, found with MLflow's own client (`mlflow-skinny`).

- `runs:/<run_id>/<path>`: an artifact of a run (the course: `runs:/<id>/model/data/model.keras`);
- `runs:/<run_id>`: the run's model, where `mlflow.keras.log_model(model, "model")` puts it;
- `models:/<name>/<version>` and `models:/<name>@<alias>`: a registered model version;
- `mlflow-experiment:<name>`: the newest FINISHED run of the experiment that holds a model
  (ordered by end time): the course's deploy rule.

Each resolves to a run and an artifact location. An artifact store on S3 is read with boto3
(`s3.py`), so the cache, retries and error messages are the same as for `s3://` URIs; other
stores go through `mlflow.artifacts.download_artifacts`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import s3
from .cache import cannot_write
from .errors import ModelSourceError, SourceUnavailable

MODEL_FILE = "model/data/model.keras"  # where mlflow.keras.log_model(model, "model") puts it

PERMANENT_MLFLOW_CODES = {
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_PARAMETER_VALUE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "BAD_REQUEST",
    "INVALID_STATE",
}


@dataclass(frozen=True)
class Artifact:
    """A model file in a run's artifacts, and what the registry said of it."""

    run_id: str
    artifact_uri: str  # the run's artifact root, e.g. s3://bucket/1/<run_id>/artifacts
    path: str  # inside the artifact root, e.g. model/data/model.keras
    registry_version: str | None = None  # "name/version" when it came from the registry

    @property
    def location(self) -> str:
        return f"{self.artifact_uri.rstrip('/')}/{self.path}"


def _client():
    # MLflow's HTTP client retries for minutes on its own; `sources.resolve` owns retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow import MlflowClient

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise ModelSourceError("MLFLOW_TRACKING_URI is not set: where is the MLflow server?")
    return MlflowClient()


def _call(what: str, uri: str, function: Callable, *args, **kwargs):
    """Call the MLflow client, sorting its failures into permanent and transient (a file it
    cannot write, e.g. on a full disk, passes through as the `OSError` it is)."""
    from mlflow.exceptions import MlflowException

    try:
        return function(*args, **kwargs)
    except MlflowException as exc:
        if (unwritable := _write_error_in(str(exc))) is not None:
            raise unwritable from None  # the cache's fault: fetch_into_cache says so, at once
        code = str(getattr(exc, "error_code", ""))
        message = str(exc).splitlines()[0][:300]
        if code in PERMANENT_MLFLOW_CODES:
            raise ModelSourceError(f"{what}: {message} ({uri})") from None
        raise SourceUnavailable(f"MLflow unavailable while {what} ({message}): {uri}") from None
    except OSError as exc:
        if cannot_write(exc):
            raise  # the cache's fault, not MLflow's: fetch_into_cache says so, at once
        raise SourceUnavailable(f"MLflow unreachable while {what} ({exc}): {uri}") from None


def _write_error_in(message: str) -> OSError | None:
    """MLflow downloads in worker threads and reports their failures as one MlflowException
    (INTERNAL_ERROR, which reads as transient) quoting each: `[Errno 28] No space left on
    device: '…'`. A file system's refusal quoted there is the `OSError` it was; only errors a
    file system alone gives are taken (a permission error may be the store's)."""
    for number, words in re.findall(r"\[Errno (\d+)\] ([^:'\n]+)", message):
        error = OSError(int(number), words.strip())
        if cannot_write(error):
            return error
    return None


def resolve(uri: str) -> Artifact:
    if uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/") :].strip("/").partition("/")
        return _run_artifact(uri, run_id, path or MODEL_FILE)
    if uri.startswith("models:/"):
        return _registered(uri, uri[len("models:/") :].strip("/"))
    if uri.startswith("mlflow-experiment:"):
        return _newest_finished_run(uri, uri[len("mlflow-experiment:") :].strip("/"))
    raise ModelSourceError(f"not an MLflow model URI: {uri}")


def _run_artifact(uri: str, run_id: str, path: str) -> Artifact:
    if not run_id:
        raise ModelSourceError(f"no run id in {uri} (expected runs:/<run_id>/<path>)")
    client = _client()
    run = _call("looking up the run", uri, client.get_run, run_id)
    artifact = Artifact(run.info.run_id, run.info.artifact_uri, path)
    if not path.endswith(".keras"):  # a folder: the one .keras file under it
        found = _keras_files(client, uri, run_id, path)
        if len(found) != 1:
            what = "no .keras file" if not found else f"{len(found)} .keras files"
            raise ModelSourceError(f"{what} under artifact {path} of run {run_id}: {uri}")
        artifact = Artifact(run.info.run_id, run.info.artifact_uri, found[0])
    return artifact


def _keras_files(client, uri: str, run_id: str, folder: str) -> list[str]:
    found, pending = [], [folder]
    while pending:
        for item in _call("listing artifacts", uri, client.list_artifacts, run_id, pending.pop()):
            if item.is_dir:
                pending.append(item.path)
            elif item.path.endswith(".keras"):
                found.append(item.path)
    return sorted(found)


def _registered(uri: str, reference: str) -> Artifact:
    client = _client()
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = _call(
            f"looking up alias {alias} of {name}",
            uri,
            client.get_model_version_by_alias,
            name,
            alias,
        )
    else:
        name, _, number = reference.rpartition("/")
        if not name or not number.isdigit():
            raise ModelSourceError(
                f"expected models:/<name>/<version> or models:/<name>@<alias>: {uri}"
            )
        version = _call(
            f"looking up version {number} of {name}", uri, client.get_model_version, name, number
        )
    if not version.run_id:
        raise ModelSourceError(
            f"registered version {version.version} of {name} names no run: {uri}"
        )
    source = version.source or ""
    run = _call("looking up the run", uri, client.get_run, version.run_id)
    root = run.info.artifact_uri.rstrip("/")
    if source.startswith("runs:/"):
        path = source[len("runs:/") :].strip("/").partition("/")[2]
    elif source.startswith(root + "/"):
        path = source[len(root) + 1 :]
    else:
        path = "model"
    artifact = _run_artifact(uri, version.run_id, path or "model")
    return Artifact(
        artifact.run_id, artifact.artifact_uri, artifact.path, f"{name}/{version.version}"
    )


def _newest_finished_run(uri: str, experiment: str) -> Artifact:
    client = _client()
    found = _call("looking up the experiment", uri, client.get_experiment_by_name, experiment)
    if found is None:
        raise ModelSourceError(f"no MLflow experiment named {experiment!r}: {uri}")
    runs = _call(
        "searching finished runs",
        uri,
        client.search_runs,
        [found.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=50,
    )
    for run in runs:
        if _keras_files(client, uri, run.info.run_id, "model"):
            return _run_artifact(uri, run.info.run_id, "model")
    raise ModelSourceError(f"experiment {experiment!r} has no FINISHED run holding a model: {uri}")


def download(artifact: Artifact, destination: Path) -> None:
    """Fetch the artifact's file to `destination`: boto3 for S3 stores, MLflow otherwise."""
    if artifact.artifact_uri.startswith("s3://"):
        s3.download(s3.locate(artifact.location), destination)
        return
    import mlflow

    def fetch(scratch: str) -> str:
        return mlflow.artifacts.download_artifacts(
            run_id=artifact.run_id, artifact_path=artifact.path, dst_path=scratch
        )

    fetched_into(destination, artifact.location, fetch)


def fetched_into(destination: Path, location: str, fetch: Callable[[str], str]) -> None:
    """`fetch(folder)` downloads into a scratch folder beside `destination` (MLflow names the
    file) and returns the file's path; it is then moved to `destination`."""
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        local = _call("downloading the model", location, fetch, scratch)
        shutil.move(local, destination)
