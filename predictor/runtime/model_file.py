"""Check a model file before Keras opens it: a `.keras` file is a zip archive, and what Keras
inflates from it into memory is whatever its headers say, or more.

Keras reads `config.json` whole into memory and parses it, and reads `model.weights.h5` whole
when it thinks memory allows; its own guard against decompression bombs starts at 4 GiB per
entry. A `config.json` that inflates to 2.5 GiB took a predictor to 5.9 GiB of RSS before Keras
refused it: in a pod limited to 2 GiB, an endless loop of OOM kills. So the archive is checked
first, reading only its directory and headers, and refused with one line (`ModelFileError`)
naming the file and the reason when:

- it is not a zip archive (a legacy HDF5 `.h5` file included: see below);
- its directory holds more than `most_entries` entries or `most_directory_bytes` (parsing it
  costs memory per entry before any other check can run);
- an entry's name is a path out of the archive (absolute, `..`), it is encrypted, or compressed
  otherwise than stored or deflated (the two Keras writes);
- `config.json` or `metadata.json` inflates to more than `most_config_bytes` (Keras's configs
  are KBs to a few MB: 145 KB for the built-in EfficientNet-Lite0), an entry inflates more than
  `most_ratio` times its compressed size (past a 1 MiB floor), or all of them to more than
  `most_total_bytes`;
- its headers lie: an entry's data runs past the end of the file or into another entry's (the
  overlapping entries of a "non-recursive" zip bomb), a stored entry's two sizes differ, or a
  deflated entry inflates to more than its header declares. Python's zipfile trusts the
  central directory's sizes, and reads the whole compressed entry into one inflation of up to
  2 GiB before cutting it to the declared size, so a small declared size does not bound
  Keras's memory. The check inflates each deflated entry in pieces of `PIECE` bytes, counting
  and discarding them, and stops as soon as it passes the declared size: it never holds more
  than one piece, whatever the entry inflates to.

Stored entries (Keras stores all three of its files) are not read at all: their data range is
checked against the file. So the check costs a few reads for a 528 MB VGG16 file.

A legacy HDF5 model (`.h5`, Keras 2's format) is refused with a note to save it as `.keras`:
HDF5 compresses datasets chunk by chunk with filters of its own, so no check short of opening it
with HDF5 could bound what it inflates to. The course saves `.keras`, and every model source
but a local path already finds only `.keras` files.
"""

from __future__ import annotations

import itertools
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .base import ModelFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CONFIG_NAMES = frozenset({"config.json", "metadata.json"})
RATIO_FLOOR = 1 << 20  # below this an entry's ratio is not worth a refusal: it costs nothing
PIECE = 1 << 16  # compressed bytes read, and inflated bytes produced, per step of the check

END = struct.Struct("<4s4H2LH")  # end of central directory record
END64_LOCATOR = struct.Struct("<4sLQL")
END64 = struct.Struct("<4sQ2H2L4Q")
LOCAL = struct.Struct("<4s5H3L2H")  # local file header


@dataclass(frozen=True)
class ArchiveLimits:
    """What a model file's archive may hold, far above what Keras writes for any model a
    predictor pod can serve (VGG16: 3 entries, 528 MB of weights, a 20 KB config)."""

    most_entries: int = 1000  # config, metadata, weights, and a layer's assets (vocabularies)
    most_directory_bytes: int = 1 << 20
    most_config_bytes: int = 8 << 20
    most_ratio: int = 100
    most_total_bytes: int = 4 << 30


class ArchiveProblem(ValueError):
    """Why the archive is refused, in words for the log line."""


def check_model_file(path: Path, limits: ArchiveLimits | None = None) -> None:
    """Refuse a model file that Keras should not open: `ModelFileError("<path> is not a loadable
    Keras model: <reason>")`, the message runtime/runtimes.py gives a file Keras itself refuses."""
    try:
        examined = os.stat(path)
        if not stat.S_ISREG(examined.st_mode):
            raise ArchiveProblem("not a regular file")
        with open(path, "rb") as file:
            archive_problem(file, examined.st_size, limits or ArchiveLimits())
    except (ArchiveProblem, OSError) as exc:
        reason = str(exc) if isinstance(exc, ArchiveProblem) else (exc.strerror or str(exc))
        raise ModelFileError(f"{path} is not a loadable Keras model: {reason}") from None


def archive_problem(file: BinaryIO, size: int, limits: ArchiveLimits) -> None:
    """Raise `ArchiveProblem` for the first rule (module docstring) the archive breaks."""
    if file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
        raise ArchiveProblem(
            "a legacy HDF5 (.h5) model file; save it as .keras (model.save('model.keras')): "
            "the predictor bounds what a .keras archive inflates to, and cannot an HDF5 file's"
        )
    entries, directory_bytes = directory_size(file, size)
    if entries > limits.most_entries:
        raise ArchiveProblem(
            f"its archive holds {entries} entries, more than {limits.most_entries}"
        )
    if directory_bytes > limits.most_directory_bytes:
        raise ArchiveProblem(
            f"its archive's directory is {_size(directory_bytes)}, "
            f"more than {_size(limits.most_directory_bytes)}"
        )
    file.seek(0)
    try:
        infos = zipfile.ZipFile(file).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ArchiveProblem(f"a damaged zip archive ({exc})") from None
    if len(infos) > limits.most_entries:  # zipfile's count, should it differ from the record's
        raise ArchiveProblem(f"its archive holds {len(infos)} entries")
    total = 0
    ranges = []
    for info in infos:
        entry_problem(info, limits)
        total += info.file_size
        if total > limits.most_total_bytes:
            raise ArchiveProblem(
                f"its entries inflate to more than {_size(limits.most_total_bytes)} in all"
            )
        start = data_start(file, info)
        if start + info.compress_size > size:
            raise ArchiveProblem(f"entry {info.filename} runs past the end of the file")
        ranges.append((start, start + info.compress_size, info.filename))
        if info.compress_type == zipfile.ZIP_DEFLATED:
            file.seek(start)
            inflates_as_declared(file, info)
    ranges.sort()
    for (_, end, first), (start, _, second) in itertools.pairwise(ranges):
        if start < end:
            raise ArchiveProblem(f"entries {first} and {second} overlap")


def directory_size(file: BinaryIO, size: int) -> tuple[int, int]:
    """(entries, bytes) of the archive's central directory, as its end record declares them:
    read before zipfile parses the directory into one object per entry."""
    tail_size = min(size, END.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + END.size > len(tail):
        raise ArchiveProblem("not a zip archive (a .keras model file is one)")
    _, disk, _, _, entries, directory_bytes, offset, _ = END.unpack_from(tail, at)
    if disk != 0:
        raise ArchiveProblem("a multi-part zip archive")
    if entries == 0xFFFF or 0xFFFFFFFF in (directory_bytes, offset):
        locator_at = size - tail_size + at - END64_LOCATOR.size
        if locator_at < 0:
            raise ArchiveProblem("a damaged zip archive (no ZIP64 end record)")
        file.seek(locator_at)
        signature, _, record_at, _ = END64_LOCATOR.unpack(file.read(END64_LOCATOR.size))
        file.seek(record_at)
        record = file.read(END64.size)
        if signature != b"PK\x06\x07" or len(record) != END64.size:
            raise ArchiveProblem("a damaged zip archive (no ZIP64 end record)")
        fields = END64.unpack(record)
        if fields[0] != b"PK\x06\x06":
            raise ArchiveProblem("a damaged zip archive (no ZIP64 end record)")
        entries, directory_bytes = fields[7], fields[8]
    return entries, directory_bytes


def entry_problem(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """The rules one entry's central-directory record must keep, read from it alone."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or "\0" in name or ":" in parts[0]:
        raise ArchiveProblem(f"entry {name!r} is a path out of the archive")
    if info.flag_bits & 0x1:
        raise ArchiveProblem(f"entry {name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveProblem(
            f"entry {name} is compressed with method {info.compress_type} "
            "(Keras stores or deflates)"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise ArchiveProblem(f"entry {name} is stored, yet its header gives two sizes")
    if name in CONFIG_NAMES and info.file_size > limits.most_config_bytes:
        raise ArchiveProblem(
            f"{name} inflates to {_size(info.file_size)}, more than the "
            f"{_size(limits.most_config_bytes)} a model's {name} may hold"
        )
    if info.file_size > RATIO_FLOOR and info.file_size > limits.most_ratio * info.compress_size:
        raise ArchiveProblem(
            f"entry {name} inflates {info.file_size / max(info.compress_size, 1):.0f} times "
            f"over (to {_size(info.file_size)}), more than {limits.most_ratio} times"
        )


def data_start(file: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where an entry's data begins: after its local header, which must name the same entry
    (zipfile reads the data from there, whatever the directory says the local header holds)."""
    file.seek(info.header_offset)
    header = file.read(LOCAL.size)
    if len(header) != LOCAL.size or header[:4] != b"PK\x03\x04":
        raise ArchiveProblem(f"entry {info.filename} has no local header")
    fields = LOCAL.unpack(header)
    name_length, extra_length = fields[9], fields[10]
    name = file.read(name_length)
    encoding = "utf-8" if fields[2] & 0x800 else "cp437"
    if name.decode(encoding, errors="replace") != info.orig_filename:
        raise ArchiveProblem(f"entry {info.filename}'s local header names another file")
    return info.header_offset + LOCAL.size + name_length + extra_length


def inflates_as_declared(file: BinaryIO, info: zipfile.ZipInfo) -> None:
    """Inflate a deflated entry from `file` (at its data) in pieces, counting and discarding
    them: `ArchiveProblem` as soon as it passes its declared size, or if it ends elsewhere."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced, left = 0, info.compress_size
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail
            if not data and left:
                data = file.read(min(PIECE, left))
                if not data:
                    break
                left -= len(data)
            out = inflater.decompress(data, PIECE)
            produced += len(out)
            if produced > info.file_size:
                raise ArchiveProblem(
                    f"entry {info.filename} inflates to more than the "
                    f"{_size(info.file_size)} its header declares"
                )
            if not data and not out:
                break
    except zlib.error as exc:
        raise ArchiveProblem(
            f"entry {info.filename} is not a valid deflate stream ({exc})"
        ) from None
    if not inflater.eof or produced != info.file_size:
        raise ArchiveProblem(
            f"entry {info.filename} inflates to {_size(produced)}, not the "
            f"{_size(info.file_size)} its header declares"
        )


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
