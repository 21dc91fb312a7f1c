"""A calibration folder someone else fills (predictor/precision/calibration.py): too few distinct
photos, links to what never ends or blocks, loops; and the layout Kubernetes gives a ConfigMap or
Secret volume, which must keep working. Course photos from predictor/precision/photos (the
default folder); nothing is decoded but by the real `calibration.load`."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from predictor.imaging import ImageLimits
from predictor.precision import calibration
from predictor.precision.calibration import CalibrationError
from support import images

pytestmark = pytest.mark.unit

LIMIT = ImageLimits().max_bytes


def plain_folder(root: Path, count: int = 24) -> Path:
    for path, label in images.labelled_course_photos()[:count]:
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / label / path.name)
    return root


def within(seconds: float, function, *args):
    """function(*args)'s result or exception, failing the test (not hanging it) if it takes
    longer: a FIFO opened, or /proc/self/pagemap read to its end, would never return."""
    outcome: list = []

    def run():
        try:
            outcome.append(function(*args))
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{function.__name__} did not return within {seconds} s"
    return outcome[0]


@pytest.mark.parametrize("copies", [1, 30])
def test_copies_of_one_photo_are_one_photo_and_refused_with_the_count(tmp_path, copies):
    """All copies of one photo: nothing left to hold out. Before, `load` returned an empty
    held-out set and the load crashed on it (`need at least one array to concatenate`)."""
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    photo = images.course_photo_paths(1)[0]
    for index in range(copies):
        shutil.copyfile(photo, root / "cat" / f"{index}.png")
    with pytest.raises(CalibrationError) as refused:
        calibration.load(root)
    said = f"calibration folder {root}: 1 distinct photo in {copies} files (copies count once); "
    assert str(refused.value).startswith(said)
    # how many are needed, and how they are split, is calibration.py's to say
    assert re.fullmatch(r"\d+ are needed, .+ held out", str(refused.value).removeprefix(said))


def test_two_distinct_photos_are_left_to_the_guard(tmp_path):
    """One each side: the load runs, and the guard refuses it by its own count (guard.py)."""
    root = plain_folder(tmp_path / "photos", 2)
    photos = calibration.load(root)
    assert (len(photos.calibration), len(photos.held_out)) == (1, 1)


def configmap_volume(root: Path, photos: list[tuple[Path, str]]) -> Path:
    """The layout kubelet's atomic writer gives a ConfigMap (or Secret) volume whose items put
    photos under label folders: the files in a hidden timestamped folder, `..data` a link to it,
    each top-level name a link through `..data`."""
    timestamped = root / "..2026_01_02_03_04_05.123456789"
    for path, label in photos:
        (timestamped / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, timestamped / label / path.name)
    shutil.copyfile(photos[0][0], timestamped / "loose.png")
    (root / "..data").symlink_to(timestamped.name)
    for name in sorted(p.name for p in timestamped.iterdir()):
        (root / name).symlink_to(Path("..data") / name)
    return root


def test_a_configmap_volume_reads_each_photo_once_by_its_visible_name(tmp_path):
    photos = images.labelled_course_photos()[:24]
    volume = configmap_volume(tmp_path / "volume", photos)
    plain = plain_folder(tmp_path / "plain", 24)
    shutil.copyfile(photos[0][0], plain / "loose.png")
    found = calibration.image_files(volume)
    assert len(found) == 25  # not 50 (..data's copies) nor 75 (the timestamped folder's too)
    assert all(not part.startswith(".") for p in found for part in p.relative_to(volume).parts)
    assert [p.relative_to(volume) for p in found] == [
        p.relative_to(plain) for p in calibration.image_files(plain)
    ]
    from_volume, from_plain = calibration.load(volume), calibration.load(plain)
    assert from_volume.digest == from_plain.digest == calibration.fingerprint(volume)
    assert np.array_equal(from_volume.held_out, from_plain.held_out)
    assert np.array_equal(from_volume.held_out_labels, from_plain.held_out_labels)


def link_to(target: str):
    return lambda path: path.symlink_to(target)


def sparse(size: int):
    def make(path):
        with open(path, "wb") as file:
            file.truncate(size)

    return make


HOSTILE = {
    "a link to /proc/self/pagemap (size 0, endless)": (
        link_to("/proc/self/pagemap"),
        f"reads more than the limit of {LIMIT} bytes",
    ),
    "a link to /dev/zero": (link_to("/dev/zero"), "not a regular file (a character device)"),
    "a FIFO": (os.mkfifo, "not a regular file (a FIFO)"),
    "a file over the byte limit": (
        sparse(LIMIT + 1),
        f"{LIMIT + 1} bytes, over the limit of {LIMIT} bytes",
    ),
    "a link to nowhere": (link_to("/no/such/photo.png"), "No such file or directory"),
}


@pytest.mark.parametrize("reader", ["fingerprint", "load"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_photo_that_is_not_a_regular_file_within_the_limit_is_refused_by_name(
    tmp_path, case, reader
):
    make, reason = HOSTILE[case]
    root = plain_folder(tmp_path / "photos", 4)
    make(root / "0-hostile.png")  # first in path order
    refused = within(20, getattr(calibration, reader), root)
    assert isinstance(refused, CalibrationError), refused
    assert str(refused) == f"0-hostile.png: {reason}"


def test_a_folder_link_loop_is_walked_once(tmp_path):
    root = plain_folder(tmp_path / "photos", 6)
    (root / "dog" / "again").symlink_to("..", target_is_directory=True)
    (root / "elsewhere").symlink_to(root / "other", target_is_directory=True)
    found = within(20, calibration.image_files, root)
    assert len(found) == 6
    assert len({p.resolve() for p in found}) == 6


def test_a_walk_that_meets_too_many_names_stops(tmp_path, monkeypatch):
    root = plain_folder(tmp_path / "photos", 2)
    for index in range(60):
        (root / f"note-{index}.txt").touch()
    monkeypatch.setattr(calibration, "MOST_ENTRIES", 50)  # 100 000 in earnest: a link to /
    with pytest.raises(CalibrationError, match="holds more than 50 names"):
        calibration.image_files(root)
