"""A model on the local file system: a `.keras` file, or a folder holding exactly one
(KServe's storage initializer puts models in `/mnt/models`)."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelSourceError


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
