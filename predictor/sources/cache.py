"""The download cache: one file per resolved source, written atomically.

A download goes to a temporary name in the cache folder and is renamed into place only when
complete, so a crash mid-download never leaves a file that a restart would load. The name is a
digest of the resolved source (including its version tag, e.g. the S3 ETag), so a changed
object is fetched again and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def cached_path(cache_dir: Path, resolved_source: str) -> Path:
    digest = hashlib.sha256(resolved_source.encode()).hexdigest()[:32]
    return cache_dir / f"{digest}.keras"


def fetch_into_cache(
    cache_dir: Path, resolved_source: str, download: Callable[[Path], None]
) -> tuple[Path, bool]:
    """The cached file for `resolved_source`, downloading it with `download(temporary_path)`
    first if absent. Returns (path, True if it came from the cache)."""
    target = cached_path(cache_dir, resolved_source)
    if target.is_file():
        return target, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=".partial-", suffix=".keras")
    os.close(handle)
    try:
        download(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target, False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
