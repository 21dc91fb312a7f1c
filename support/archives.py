"""Zip archives written byte by byte, for the tests of predictor/runtime/model_file.py: honest ones,
and the hostile ones no zip library writes (headers that lie, overlapping entries, bombs).

Nothing big is ever built or inflated: a deflate stream of N MiB of zeros is one compressed MiB
(a full flush resets the compressor, so each MiB compresses to the same ~1 KB) repeated N times.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
END = struct.Struct("<4s4H2LH")
END64 = struct.Struct("<4sQ2H2L4Q")
END64_LOCATOR = struct.Struct("<4sLQL")
UTF8 = 0x800


@dataclass
class Member:
    """One entry: `data` as stored (already deflated for method 8); `size` the uncompressed
    size its headers declare (the stored length unless told), `crc` the CRC they declare."""

    name: str
    data: bytes
    method: int = zipfile.ZIP_STORED
    size: int | None = None
    crc: int | None = None
    flags: int = 0

    @property
    def declared_size(self) -> int:
        return len(self.data) if self.size is None else self.size

    @property
    def declared_crc(self) -> int:
        if self.crc is not None:
            return self.crc
        return zlib.crc32(self.data) if self.method == zipfile.ZIP_STORED else 0


def stored(name: str, data: bytes) -> Member:
    return Member(name, data)


def deflated(name: str, data: bytes) -> Member:
    """An honest deflated entry (right sizes, right CRC)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = compressor.compress(data) + compressor.flush()
    return Member(name, stream, zipfile.ZIP_DEFLATED, len(data), zlib.crc32(data))


def zeros_stream(mebibytes: int) -> bytes:
    """A raw deflate stream that inflates to `mebibytes` MiB of zeros, ~1/1000 of that long."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return piece * mebibytes + compressor.flush()


def local_header(member: Member) -> bytes:
    name = member.name.encode()
    return (
        LOCAL.pack(
            b"PK\x03\x04",
            20,
            member.flags | UTF8,
            member.method,
            0,
            0x21,
            member.declared_crc,
            len(member.data),
            member.declared_size,
            len(name),
            0,
        )
        + name
    )


def central_record(member: Member, offset: int) -> bytes:
    name = member.name.encode()
    return (
        CENTRAL.pack(
            b"PK\x01\x02",
            20,
            20,
            member.flags | UTF8,
            member.method,
            0,
            0x21,
            member.declared_crc,
            len(member.data),
            member.declared_size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


def end_record(entries: int, directory: int, offset: int) -> bytes:
    return END.pack(b"PK\x05\x06", 0, 0, entries, entries, directory, offset, 0)


def zip64_end(entries: int, directory: int, offset: int, at: int) -> bytes:
    """A ZIP64 end record at `at` declaring `entries`, its locator, and the classic end record
    pointing to them."""
    record = END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, directory, offset)
    locator = END64_LOCATOR.pack(b"PK\x06\x07", 0, at, 1)
    return record + locator + end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def build(members: list[Member]) -> bytes:
    """An archive of `members` in order, each once: what a zip library would write, except
    that each member's headers declare what it says."""
    body, directory = bytearray(), bytearray()
    for member in members:
        directory += central_record(member, len(body))
        body += local_header(member) + member.data
    return bytes(body + directory + end_record(len(members), len(directory), len(body)))


def write(path: Path, members: list[Member]) -> Path:
    path.write_bytes(build(members))
    return path


def members_of(path: Path) -> list[Member]:
    """A real archive's entries (a model Keras saved), to write again with some replaced."""
    with zipfile.ZipFile(path) as archive:
        return [stored(info.filename, archive.read(info)) for info in archive.infolist()]


def repacked(source: Path, target: Path, *replacements: Member) -> Path:
    """`source`'s entries written to `target`, each of `replacements` in place of the entry
    of its name."""
    by_name = {member.name: member for member in replacements}
    return write(target, [by_name.get(m.name, m) for m in members_of(source)])
