"""Where the model comes from: resolve a model URI to a local `.keras` file.

    /models/final_model.keras, /mnt/models, file:///…   a local file, or a folder with one
    s3://bucket/key.keras, s3://bucket/prefix/           S3 or an S3-compatible store
    runs:/<run_id>/model/data/model.keras, runs:/<id>    an MLflow run's artifact / model
    models:/<name>/<version>, models:/<name>@<alias>     the MLflow model registry
    mlflow-experiment:<name>                              the newest FINISHED run with a model

Remote files are cached (`cache.py`). Transient failures are retried with exponential back-off
until `give_up_after` seconds have passed; permanent ones raise `ModelSourceError` at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import mlflow_source, s3
from .cache import fetch_into_cache, sha256_of
from .errors import ModelSourceError, SourceUnavailable
from .local import locate_keras_file

__all__ = ["ModelSourceError", "ResolvedModel", "SourceUnavailable", "redact", "resolve"]

logger = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-experiment:")


@dataclass(frozen=True)
class ResolvedModel:
    """Which model is live: what was asked for, where the file came from, and its digest."""

    uri: str
    path: Path
    location: str
    sha256: str
    run_id: str | None = None
    registry_version: str | None = None
    from_cache: bool = False

    def describe(self) -> dict[str, str]:
        described = {"uri": self.uri, "location": self.location, "sha256": self.sha256}
        if self.run_id:
            described["run_id"] = self.run_id
        if self.registry_version:
            described["registry_version"] = self.registry_version
        return described


def redact(text: str) -> str:
    """Credentials in URLs (`https://user:secret@host`) never reach a log line."""
    return re.sub(r"://[^/\s@]+@", "://***@", text)


def resolve(
    uri: str,
    cache_dir: Path,
    *,
    give_up_after: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ResolvedModel:
    deadline = clock() + give_up_after
    delay = 1.0
    while True:
        try:
            return _resolve_once(uri, cache_dir)
        except SourceUnavailable as exc:
            if clock() + delay > deadline:
                raise ModelSourceError(
                    f"gave up after {give_up_after:.0f} s of retries: {redact(str(exc))}"
                ) from None
            logger.warning("%s; retrying in %.0f s", redact(str(exc)), delay)
            sleep(delay)
            delay = min(delay * 2, 30.0)


def _resolve_once(uri: str, cache_dir: Path) -> ResolvedModel:
    if uri.startswith("s3://"):
        obj = s3.locate(uri)
        fetched = fetch_into_cache(cache_dir, obj.versioned_uri, lambda p: s3.download(obj, p))
        return ResolvedModel(
            uri, fetched.path, obj.uri, sha256_of(fetched.path), from_cache=fetched.from_cache
        )
    if uri.startswith(MLFLOW_SCHEMES):
        artifact = mlflow_source.resolve(uri)
        if artifact.artifact_uri.startswith("s3://"):
            obj = s3.locate(artifact.location)
            key, location = obj.versioned_uri, obj.uri
            fetched = fetch_into_cache(cache_dir, key, lambda p: s3.download(obj, p))
        else:
            location = artifact.location
            fetched = fetch_into_cache(
                cache_dir, location, lambda p: mlflow_source.download(artifact, p)
            )
        return ResolvedModel(
            uri,
            fetched.path,
            location,
            sha256_of(fetched.path),
            run_id=artifact.run_id,
            registry_version=artifact.registry_version,
            from_cache=fetched.from_cache,
        )
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri) and not uri.startswith("file://"):
        raise ModelSourceError(
            f"unsupported model URI scheme: {redact(uri)} "
            "(use a path, file://, s3://, runs:/, models:/ or mlflow-experiment:)"
        )
    path = locate_keras_file(uri.removeprefix("file://"))
    return ResolvedModel(uri, path, str(path.resolve()), sha256_of(path))
