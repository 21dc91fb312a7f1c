"""The download cache: one file per resolved source, written atomically; and reading files that
someone else may have put there, safely.

A download goes to a temporary name in the cache folder and is renamed into place only when
complete, so a crash mid-download never leaves a file that a restart would load. The name is a
digest of the resolved source (including its version tag, e.g. the S3 ETag), so a changed
object is fetched again and an unchanged one is reused.

A cache that cannot be written (a full disk or quota, a read-only volume, no permission) is a
permanent failure: retrying the download cannot make room, so it ends the load at once with the
folder and the cause, the partial file removed. Telling it from a network failure matters: a
download that fails either way raises an `OSError`, and only the network's are worth retrying.

Files read here may come from a volume someone else writes (the compiled-model cache, a
calibration folder): `open_regular` opens only regular files, so a FIFO, a device or a link to
one is refused by name before it is opened (opening a FIFO blocks; reading `/dev/zero` never
ends), and `read_capped` / `sha256_of(path, most=...)` stop at a byte limit, which a file's
size alone cannot promise (files under `/proc` report size 0 and read without end).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import ModelSourceError

BLOCK = 1 << 20

# Only a file system answers these: never a socket, so never a network failure to retry.
FILE_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
# A socket may answer these too (a firewall's EPERM): a file system's when they name a file.
PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class FileRefused(ValueError):
    """A file a reader will not read: not a regular file, or more bytes than it allows."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def cannot_write(exc: BaseException) -> bool:
    """Whether `exc` says a file could not be written for good: no space, a quota, a file size
    limit, a read-only file system, or a permission a file (not a socket) was denied."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in FILE_SYSTEM_ERRNOS or (
        exc.errno in PERMISSION_ERRNOS and exc.filename is not None
    )


def describe_os_error(exc: OSError) -> str:
    """`No space left on device (ENOSPC)`: the cause in words, and its name to search for."""
    name = errno.errorcode.get(exc.errno or 0, "")
    words = exc.strerror or str(exc)
    return f"{words} ({name})" if name else words


def cached_path(cache_dir: Path, resolved_source: str) -> Path:
    digest = hashlib.sha256(resolved_source.encode()).hexdigest()[:32]
    return cache_dir / f"{digest}.keras"


@dataclass(frozen=True)
class Fetched:
    """The cached model file, and whether it was there already (not downloaded now)."""

    path: Path
    from_cache: bool


def fetch_into_cache(
    cache_dir: Path, resolved_source: str, download: Callable[[Path], None]
) -> Fetched:
    """The cached file for `resolved_source`, downloading it with `download(temporary_path)`
    first if absent. A cache that cannot be
    written raises `ModelSourceError` naming the folder and the cause; nothing is left of the
    download (the downloader's own temporary files beside ours included)."""
    target = cached_path(cache_dir, resolved_source)
    if target.is_file():
        return Fetched(path=target, from_cache=True)
    temporary = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=".partial-", suffix=".keras")
        os.close(handle)
        download(Path(temporary))
        os.replace(temporary, target)
    except OSError as exc:
        if not cannot_write(exc):
            raise
        raise ModelSourceError(
            f"cannot write the model cache {cache_dir}: {describe_os_error(exc)}"
        ) from None
    finally:
        if temporary is not None:
            # boto3 writes beside the name it is given (`<name>.<random>`), then renames.
            for leftover in [temporary, *map(str, cache_dir.glob(Path(temporary).name + ".*"))]:
                with suppress(OSError):  # the failure that got here is the one to report
                    os.unlink(leftover)
    return Fetched(path=target, from_cache=False)


@contextmanager
def open_regular(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """(the open file, its size), for a regular file only, links followed. Anything else is
    refused before it is opened; the file opened is checked to be the one examined (a swap in
    between is refused too), and opened non-blocking, so that no swap can make it block."""
    examined = os.stat(path)
    if not stat.S_ISREG(examined.st_mode):
        raise FileRefused(path, f"not a regular file ({_kind(examined.st_mode)})")
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as file:
        opened = os.fstat(descriptor)
        if (opened.st_dev, opened.st_ino) != (examined.st_dev, examined.st_ino):
            raise FileRefused(path, "changed while it was opened")
        yield file, opened.st_size


def blocks(path: Path, most: int | None = None) -> Iterator[bytes]:
    """The file's bytes in blocks; `FileRefused` as soon as it holds more than `most`, by its
    size or by what reading it yields (which may be more than its size says)."""
    with open_regular(path) as (file, size):
        if most is not None and size > most:
            raise FileRefused(path, f"{size} bytes, over the limit of {most} bytes")
        read = 0
        while block := file.read(BLOCK if most is None else min(BLOCK, most + 1 - read)):
            read += len(block)
            if most is not None and read > most:
                raise FileRefused(path, f"reads more than the limit of {most} bytes")
            yield block


def read_capped(path: Path, most: int) -> bytes:
    return b"".join(blocks(path, most))


def sha256_of(path: Path, most: int | None = None) -> str:
    digest = hashlib.sha256()
    for block in blocks(path, most):
        digest.update(block)
    return digest.hexdigest()


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"
