"""A model cache that cannot be written (predictor/sources/cache.py) is a permanent failure,
said once with the folder and the cause, the partial download removed; a network failure is
still transient. The errors are the kernel's own: writes to /dev/full, a refused connection
(a socket connected, so not `unit`; a full disk mid-download, in process: test_cache_full_disk.py).
(tests/predictor/test_hostile_inputs.py fills a real file system from a real S3 download.)"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from predictor.sources import SourceUnavailable
from predictor.sources.cache import cannot_write
from support.ports import free_port


def disk_full() -> OSError:
    """The kernel's ENOSPC: /dev/full answers every write with it."""
    descriptor = os.open("/dev/full", os.O_WRONLY)
    try:
        os.write(descriptor, b"weights")
    except OSError as exc:
        return exc
    finally:
        os.close(descriptor)
    raise AssertionError("/dev/full took a write")


def connection_refused() -> OSError:
    try:
        socket.create_connection(("127.0.0.1", free_port()), timeout=5).close()
    except OSError as exc:
        return exc
    raise AssertionError("something listens on a free port")


def test_the_errors_of_a_file_system_are_told_from_a_networks():
    assert cannot_write(disk_full())
    assert cannot_write(OSError(errno.EROFS, "Read-only file system", "/cache/.partial-x"))
    assert cannot_write(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert cannot_write(PermissionError(errno.EACCES, "Permission denied", "/cache"))
    assert not cannot_write(connection_refused())
    assert not cannot_write(OSError(errno.EPERM, "Operation not permitted"))  # a firewall's
    assert not cannot_write(TimeoutError())


def test_s3_and_mlflow_pass_a_write_error_through_and_keep_network_errors_transient():
    from predictor.sources import mlflow_source, s3

    with pytest.raises(OSError) as raised, s3.translated_errors("s3://models/m.keras"):
        raise disk_full()
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(SourceUnavailable, match="unreachable"), s3.translated_errors("s3://m"):
        raise connection_refused()

    def full():
        raise disk_full()

    def refused():
        raise connection_refused()

    with pytest.raises(OSError) as raised:
        mlflow_source._call("downloading the model", "runs:/x", full)
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(SourceUnavailable, match="MLflow unreachable"):
        mlflow_source._call("downloading the model", "runs:/x", refused)


MLFLOW_DOWNLOAD_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path

# A 1 MiB file size limit: the kernel answers a write past it with EFBIG (any user may lower
# it; SIGXFSZ ignored, else the kernel ends the writer instead).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
from predictor.sources import mlflow_source
from predictor.sources.cache import fetch_into_cache

store, cache = sys.argv[1], Path(sys.argv[2])
repository = LocalArtifactRepository(store)
download = lambda path: mlflow_source.fetched_into(
    path, store, lambda scratch: repository.download_artifacts("model.keras", scratch)
)
try:
    fetch_into_cache(cache, store + "/model.keras", download)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_an_mlflow_download_that_cannot_be_written_is_permanent(tmp_path):
    """MLflow reports its download threads' failures as one MlflowException (INTERNAL_ERROR,
    which reads as transient); the file system's error quoted in it is found there."""
    import subprocess
    import sys

    store, cache = tmp_path / "artifacts", tmp_path / "cache"
    store.mkdir()
    (store / "model.keras").write_bytes(os.urandom(2 << 20))
    done = subprocess.run(
        [sys.executable, "-c", MLFLOW_DOWNLOAD_UNDER_A_FILE_SIZE_LIMIT, store.as_uri(), str(cache)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.stdout.strip() == (
        f"ModelSourceError cannot write the model cache {cache}: File too large (EFBIG)"
    ), done.stdout + done.stderr[-2000:]
    assert list(cache.iterdir()) == []  # neither our partial file nor MLflow's scratch folder
