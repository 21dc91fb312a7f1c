"""Find the Keras file a model path names.

A path may name the `.keras` file itself or a folder holding exactly one (KServe's storage
initializer puts models in `/mnt/models`). Remote sources (S3, MLflow) resolve to such a path.
"""

from __future__ import annotations

from pathlib import Path


class ModelSourceError(ValueError):
    """The model source names nothing servable; the message names the path and the problem."""


def locate_keras_file(path: str | Path) -> Path:
    """The one `.keras` file that `path` names, or a `ModelSourceError` saying what is wrong."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    if candidate.is_dir():
        found = sorted(p for p in candidate.rglob("*.keras") if p.is_file())
        if len(found) == 1:
            return found[0]
        if not found:
            raise ModelSourceError(f"no .keras file in folder {candidate}")
        names = ", ".join(str(p.relative_to(candidate)) for p in found)
        raise ModelSourceError(f"more than one .keras file in folder {candidate}: {names}")
    raise ModelSourceError(f"model path {candidate} does not exist")
