"""The model file's archive is checked before Keras opens it (predictor/runtime/model_file.py): real
archives pass, and each hostile one is refused by name and reason, without inflating it.

The archives are written byte by byte (support/archives.py): a 2.5 GiB bomb is 2.6 MB here."""

from __future__ import annotations

import os
import threading
import tracemalloc
import zipfile

import pytest

from predictor import default_model
from predictor.runtime.base import ModelFileError
from predictor.runtime.model_file import ArchiveLimits, check_model_file
from support import archives
from support.archives import Member, deflated, stored

pytestmark = pytest.mark.unit

CONFIG = b'{"class_name": "Functional", "config": {"layers": []}}'


def keras_like(*replacements: Member) -> list[Member]:
    """The three entries Keras writes, small, each replaceable by name."""
    members = [
        stored("metadata.json", b'{"keras_version": "3.15.1"}'),
        deflated("config.json", CONFIG),
        stored("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(4000)),
    ]
    by_name = {member.name: member for member in replacements}
    return [by_name.pop(m.name, m) for m in members] + list(by_name.values())


def refusal(path, limits: ArchiveLimits | None = None) -> str:
    with pytest.raises(ModelFileError) as refused:
        check_model_file(path, limits)
    message = str(refused.value)
    assert message.startswith(f"{path} is not a loadable Keras model: ")
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_the_built_in_model_passes():
    check_model_file(default_model.PATH)


def test_an_honest_archive_passes_and_zipfile_reads_what_was_written(tmp_path):
    path = archives.write(tmp_path / "m.keras", keras_like())
    check_model_file(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert archive.read("config.json") == CONFIG


def test_a_config_that_inflates_to_gigabytes_is_refused_from_its_header(tmp_path):
    """The attacker's file: 2.6 MB, whose config.json inflates to 2.5 GiB. Keras's own guard
    starts at 4 GiB per entry; the predictor reached 5.9 GiB of RSS before Keras refused it."""
    bomb = Member("config.json", archives.zeros_stream(2560), zipfile.ZIP_DEFLATED, 2560 << 20)
    path = archives.write(tmp_path / "m.keras", keras_like(bomb))
    assert path.stat().st_size < 3 << 20
    assert refusal(path) == (
        "config.json inflates to 2.5 GiB, more than the 8.0 MiB a model's config.json may hold"
    )


def test_a_header_that_lies_is_caught_while_inflating_within_one_piece(tmp_path):
    """Declared 1 KiB, inflating to 256 MiB: zipfile would inflate it all at once (up to 2 GiB
    per read) before cutting it to the declared size. The check stops at the first piece."""
    liar = Member("config.json", archives.zeros_stream(256), zipfile.ZIP_DEFLATED, 1024)
    path = archives.write(tmp_path / "m.keras", keras_like(liar))
    tracemalloc.start()
    try:
        reason = refusal(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason == "entry config.json inflates to more than the 1.0 KiB its header declares"
    assert peak < 2 << 20, f"the check held {peak} bytes at once"


def overlapping() -> bytes:
    """Two entries, the second's header and data inside the first's stored data (the
    construction of a non-recursive zip bomb: many entries, one copy of the data)."""
    inner = stored("model.weights.h5", bytes(1000))
    inner_bytes = archives.local_header(inner) + inner.data
    outer = stored("config.json", inner_bytes)
    body = archives.local_header(outer) + outer.data
    inner_at = len(archives.local_header(outer))
    directory = archives.central_record(outer, 0) + archives.central_record(inner, inner_at)
    return body + directory + archives.end_record(2, len(directory), len(body))


def past_the_end() -> bytes:
    member = stored("model.weights.h5", bytes(100))
    whole = archives.build([member])
    lying = Member("model.weights.h5", bytes(100 + 50_000))  # the directory's sizes only
    body = archives.local_header(member) + member.data
    directory = archives.central_record(lying, 0)
    assert len(whole) < 50_000
    return body + directory + archives.end_record(1, len(directory), len(body))


def many_entries_by_zip64() -> bytes:
    """An end record that sends the reader to a ZIP64 record declaring ten million entries:
    zipfile would parse a directory that large into one object each."""
    body = archives.build(keras_like())
    cut = body.rfind(b"PK\x05\x06")
    return body[:cut] + archives.zip64_end(10_000_000, 50 << 20, 0, cut)


def write_bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def write_members(*members: Member):
    return lambda path: archives.write(path, keras_like(*members))


CASES = {
    "not a zip": (write_bytes(b"not zip"), "not a zip archive (a .keras model file is one)"),
    "legacy HDF5": (
        write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)),
        "a legacy HDF5 (.h5) model file; save it as .keras",
    ),
    "too many entries": (
        lambda path: archives.write(
            path, keras_like() + [stored(f"assets/{n}", b"") for n in range(1000)]
        ),
        "its archive holds 1003 entries, more than 1000",
    ),
    "ten million entries declared in a ZIP64 record": (
        write_bytes(many_entries_by_zip64()),
        "its archive holds 10000000 entries, more than 1000",
    ),
    "metadata.json inflating to 64 MiB": (
        write_members(
            Member("metadata.json", archives.zeros_stream(64), zipfile.ZIP_DEFLATED, 64 << 20)
        ),
        "metadata.json inflates to 64.0 MiB, more than the 8.0 MiB",
    ),
    "weights inflating a thousand times over": (
        write_members(
            Member("model.weights.h5", archives.zeros_stream(64), zipfile.ZIP_DEFLATED, 64 << 20)
        ),
        "entry model.weights.h5 inflates 1011 times over (to 64.0 MiB), more than 100 times",
    ),
    "a stream that ends short of its declared size": (
        write_members(Member("config.json", deflated("config.json", CONFIG).data, 8, 4096)),
        f"entry config.json inflates to {len(CONFIG)} bytes, not the 4.0 KiB its header",
    ),
    "a stored entry with two sizes": (
        write_members(Member("model.weights.h5", bytes(10), size=20)),
        "entry model.weights.h5 is stored, yet its header gives two sizes",
    ),
    "data past the end of the file": (
        write_bytes(past_the_end()),
        "entry model.weights.h5 runs past the end of the file",
    ),
    "overlapping entries": (
        write_bytes(overlapping()),
        "entries config.json and model.weights.h5 overlap",
    ),
    "a parent path": (
        write_members(stored("assets/../../../etc/cron.d/x", b"x")),
        "entry 'assets/../../../etc/cron.d/x' is a path out of the archive",
    ),
    "an absolute path": (
        write_members(stored("/etc/passwd", b"x")),
        "entry '/etc/passwd' is a path out of the archive",
    ),
    "an encrypted entry": (
        write_members(Member("model.weights.h5", bytes(10), flags=0x1)),
        "entry model.weights.h5 is encrypted",
    ),
    "bzip2": (
        write_members(Member("model.weights.h5", bytes(10), zipfile.ZIP_BZIP2, 10)),
        "entry model.weights.h5 is compressed with method 12 (Keras stores or deflates)",
    ),
    "a folder": (lambda path: path.mkdir(), "not a regular file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_archive_is_refused_with_its_reason(tmp_path, case):
    make, reason = CASES[case]
    path = tmp_path / "final_model.keras"
    make(path)
    assert refusal(path).startswith(reason)


def test_the_total_and_the_directory_have_limits_of_their_own(tmp_path):
    path = archives.write(
        tmp_path / "m.keras",
        keras_like(stored("model.weights.h5", bytes(600_000)), stored("b.h5", bytes(600_000))),
    )
    check_model_file(path)
    assert refusal(path, ArchiveLimits(most_total_bytes=1 << 20)) == (
        "its entries inflate to more than 1.0 MiB in all"
    )
    assert refusal(path, ArchiveLimits(most_directory_bytes=100)).startswith(
        "its archive's directory is 2"
    )


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "final_model.keras"
    os.mkfifo(path)
    reasons = []
    worker = threading.Thread(target=lambda: reasons.append(refusal(path)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the check opened the FIFO and blocked"
    assert reasons == ["not a regular file"]
