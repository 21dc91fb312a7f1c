"""The photos a reduced precision is calibrated and judged on: one folder, split in two shares.

Layout: image files anywhere under the folder; those in a sub-folder named after a label
(`cat/`, `dog/`, `other/`, any case, as Keras's `image_dataset_from_directory` reads a dataset)
are labelled with it, the others are used for agreement only. Each photo is decoded exactly as
a request's is (imaging.py), then the set is split by the SHA-256 of each photo's decoded
pixels: in that order every fourth photo calibrates the quantizer (with its views, views.py),
the other three are held out for the guard, whose bound needs the larger share (guard.py: 59
photos at least; a couple of dozen calibrate INT8 as well as a hundred). The split depends on
neither file names, nor listing order, nor how a photo was encoded: the same folder always
gives the same split, and the guard never sees a photo the calibration saw, not even a
re-encoded copy of one (a PNG and a BMP of the same pixels count once).

Up to `2 * MOST_IMAGES` files are read (in path order), each within the predictor's image
limits. The default folder is `precision/photos/`: the 85 labelled photos of the course's dataset
(see its README for their source and licence), resized to 224x224 as the predictor resizes
them: 22 calibrate, 63 are held out, enough for the guard's bound to pass honestly.

The folder may be a volume someone else fills, so it is read warily. Links are followed (a
Kubernetes ConfigMap or Secret volume is a tree of links, `cat -> ..data/cat`), but an image file
must be a regular file once they are, and is read only up to the per-image byte limit: a link to
`/dev/zero`, a FIFO or `/proc/self/pagemap` (size 0, endless) is refused by name, never read
without end. Hidden names are skipped: Kubernetes keeps the real files in `..data` and
`..<timestamp>` folders, which the visible links already reach, so reading them would count
every photo twice. A folder reached twice (two links, a loop) is read once, and a walk that
meets more than `MOST_ENTRIES` names (a link to `/`) stops. A folder whose photos are too few
once copies count once (all copies of one photo) leaves nothing to hold out: refused by
`load` with the count, so the load serves FP32 and says why.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract import LABELS, PIXELS_SHAPE
from ..imaging import ImageLimits, ImageProblem, decode_image
from ..sources.cache import FileRefused, blocks
from .guard import MIN_GUARD_IMAGES

DEFAULT_DIR = Path(__file__).parent / "photos"
SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# 50 to calibrate (views.py adds views up to 150 samples in all) and 150 to judge: 120 MB of
# pixels at most, which a pod loading VGG16 can afford; more photos in the folder are ignored.
MOST_IMAGES = 100
# Names the walk looks at before giving up: a dataset of tens of thousands of photos is fine, a
# link to `/` or to a huge tree ends in seconds instead of walking the machine.
MOST_ENTRIES = 100_000


# The fewest distinct photos whose held-out share (three quarters) can pass the guard.
MIN_CALIBRATION_PHOTOS = math.ceil(MIN_GUARD_IMAGES * 4 / 3)


class CalibrationError(ValueError):
    """The folder cannot calibrate: missing, empty, too few distinct photos, or holding a file
    that is not an image (or not a regular file, or over the byte limit)."""


@dataclass(frozen=True)
class CalibrationSet:
    calibration: np.ndarray  # float32 [N, 224, 224, 3], as the model sees them
    held_out: np.ndarray  # float32 [M, 224, 224, 3]
    held_out_labels: np.ndarray  # int [M]: index into LABELS, -1 when unlabelled
    digest: str  # SHA-256 over the files' digests and labels: part of the cache key

    def describe(self) -> str:
        labelled = int(np.sum(self.held_out_labels >= 0))
        return (
            f"{len(self.calibration)} photos to calibrate, {len(self.held_out)} held out "
            f"({labelled} labelled)"
        )


def label_of(path: Path, root: Path) -> int:
    """The label a photo's folder names (its nearest ancestor that is a label), or -1."""
    names = [label.lower() for label in LABELS]
    for parent in path.relative_to(root).parents:
        if parent.name.lower() in names:
            return names.index(parent.name.lower())
    return -1


def image_files(root: Path) -> list[Path]:
    """The image files under `root` by their visible names, in path order: links followed,
    hidden names skipped, each folder walked once. A name with an image suffix that is not a
    regular file is listed all the same: reading it refuses it by name (`read_photo`)."""
    if not root.is_dir():
        raise CalibrationError(f"calibration folder {root} does not exist")
    found: list[Path] = []
    walked: set[tuple[int, int]] = set()
    pending = deque([root])
    seen = 0
    while pending:
        folder = pending.popleft()
        try:
            info = folder.stat()
        except OSError:
            continue  # a folder link that leads nowhere: nothing to read there
        if (info.st_dev, info.st_ino) in walked:
            continue
        walked.add((info.st_dev, info.st_ino))
        for name in sorted(os.listdir(folder)):
            seen += 1
            if seen > MOST_ENTRIES:
                raise CalibrationError(
                    f"calibration folder {root} holds more than {MOST_ENTRIES} names "
                    "(links included): give it a folder of photos"
                )
            if name.startswith("."):
                continue
            path = folder / name
            try:
                is_folder = stat.S_ISDIR(path.stat().st_mode)  # links followed
            except OSError:
                is_folder = False  # a broken link: read_photo names it, if it looks like a photo
            if is_folder:
                pending.append(path)
            elif path.suffix.lower() in SUFFIXES:
                found.append(path)
    if not found:
        raise CalibrationError(f"calibration folder {root} holds no image file")
    return sorted(found)


def read_photo(path: Path, root: Path, max_bytes: int) -> bytes:
    """The file's bytes, if it is a regular file (links followed) within `max_bytes`; else a
    CalibrationError naming it. Never more than `max_bytes` + 1 bytes are read."""
    try:
        return b"".join(blocks(path, max_bytes))
    except FileRefused as refused:
        raise CalibrationError(f"{path.relative_to(root)}: {refused.reason}") from None
    except OSError as exc:
        raise CalibrationError(f"{path.relative_to(root)}: {exc.strerror or exc}") from None


def split(digests: list[str]) -> tuple[list[int], list[int]]:
    """Indices of (calibration, held-out): in the order of the photos' digests, every fourth to
    calibrate and the other three held out, each distinct photo once (a copy of a calibration
    photo is not held out)."""
    first: dict[str, int] = {}
    for index, digest in enumerate(digests):
        first.setdefault(digest, index)
    order = [first[digest] for digest in sorted(first)]
    return order[0::4], [index for place, index in enumerate(order) if place % 4]


def fingerprint(root: Path = DEFAULT_DIR, limits: ImageLimits | None = None) -> str:
    """SHA-256 over the folder's photos and labels, as `load` would read them: part of the
    compiled-model cache's key, computed without decoding anything (at every start: the
    precision's verdicts and the baseline depend on the photos), each file read within the
    same byte limit as `load`'s."""
    max_bytes = (limits or ImageLimits()).max_bytes
    files = image_files(root)[: 2 * MOST_IMAGES]
    digests = [hashlib.sha256(read_photo(path, root, max_bytes)).hexdigest() for path in files]
    return _whole(digests, [label_of(path, root) for path in files])


def _whole(digests: list[str], labels: list[int]) -> str:
    whole = hashlib.sha256()
    for digest, label in sorted(zip(digests, labels, strict=True)):
        whole.update(f"{digest} {label}\n".encode())
    return whole.hexdigest()


def load(root: Path = DEFAULT_DIR, limits: ImageLimits | None = None) -> CalibrationSet:
    limits = limits or ImageLimits()
    files = image_files(root)[: 2 * MOST_IMAGES]
    pixels = np.empty((len(files), *PIXELS_SHAPE), dtype=np.float32)
    digests, decoded, labels = [], [], []
    for index, path in enumerate(files):
        data = read_photo(path, root, limits.max_bytes)
        try:
            decode_image(data, limits, out=pixels[index])
        except ImageProblem as problem:
            raise CalibrationError(f"{path.relative_to(root)}: {problem}") from None
        digests.append(hashlib.sha256(data).hexdigest())
        decoded.append(hashlib.sha256(pixels[index].tobytes()).hexdigest())
        labels.append(label_of(path, root))
    calibrate, held_out = split(decoded)  # by pixels: a re-encoded copy is the same photo
    if not held_out:  # one distinct photo: nothing to judge on (nor two shares to split)
        raise CalibrationError(
            f"calibration folder {root}: 1 distinct photo in {len(files)} files (copies count "
            f"once); {MIN_CALIBRATION_PHOTOS} are needed, a quarter to calibrate, "
            "the rest held out"
        )
    label_array = np.array(labels, dtype=np.int64)
    return CalibrationSet(
        pixels[calibrate], pixels[held_out], label_array[held_out], _whole(digests, labels)
    )
