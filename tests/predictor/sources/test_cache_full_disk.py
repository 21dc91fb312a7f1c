"""A full disk mid-download is a permanent failure of the model cache (predictor/sources/
cache.py), said once with the folder and the cause, the partial files removed. In process: the
kernel's own ENOSPC from /dev/full (test_cache_writes.py has the network's errors beside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.sources import ModelSourceError
from predictor.sources.cache import fetch_into_cache

from .test_cache_writes import disk_full

pytestmark = pytest.mark.unit


def test_a_full_disk_mid_download_is_permanent_and_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"

    def download(temporary: Path) -> None:
        temporary.write_bytes(b"the first bytes")
        Path(f"{temporary}.a1b2c3").write_bytes(b"boto3's own temporary file")
        raise disk_full()

    with pytest.raises(ModelSourceError) as error:
        fetch_into_cache(cache, "s3://models/m.keras#etag", download)
    assert str(error.value) == (
        f"cannot write the model cache {cache}: No space left on device (ENOSPC)"
    )
    assert list(cache.iterdir()) == []
