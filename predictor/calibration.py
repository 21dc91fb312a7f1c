"""The photos a reduced precision is calibrated and judged on: one folder, split in two.

Layout: image files anywhere under the folder; those in a sub-folder named after a label
(`cat/`, `dog/`, `other/`, any case, as Keras's `image_dataset_from_directory` reads a dataset)
are labelled with it, the others are used for agreement only. Each photo is decoded exactly as
a request's is (imaging.py), then the set is split by the SHA-256 of each file's bytes: the
first half in that order calibrates the quantizer, the second is held out for the guard. The
split does not depend on file names or listing order, so the same folder always gives the same
halves, and the guard never sees a photo the calibration saw.

Up to `2 * MOST_IMAGES` files are read (in path order), each within the predictor's image
limits. The default folder is `predictor/calibration/`: 30 photos from the course's dataset (see its
README for their source and licence), resized to 224x224 as the predictor resizes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contract import LABELS, PIXELS_SHAPE
from .imaging import ImageLimits, ImageProblem, decode_image
from .sources.cache import sha256_of

DEFAULT_DIR = Path(__file__).parent / "calibration"
SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# 100 to calibrate (NNCF's statistics settle well within that) and 100 to judge: 120 MB of
# pixels at most, which a pod loading VGG16 can afford; more photos in the folder are ignored.
MOST_IMAGES = 100


class CalibrationError(ValueError):
    """The folder cannot calibrate: missing, empty, or holding a file that is not an image."""


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
    if not root.is_dir():
        raise CalibrationError(f"calibration folder {root} does not exist")
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not found:
        raise CalibrationError(f"calibration folder {root} holds no image file")
    return found


def split(digests: list[str]) -> tuple[list[int], list[int]]:
    """Indices of (calibration, held-out): alternating in the order of the files' digests,
    each distinct file once (a copy of a calibration photo is not held out)."""
    first: dict[str, int] = {}
    for index, digest in enumerate(digests):
        first.setdefault(digest, index)
    order = [first[digest] for digest in sorted(first)]
    return order[0::2], order[1::2]


def fingerprint(root: Path = DEFAULT_DIR) -> str:
    """SHA-256 over the folder's photos and labels, as `load` would read them: part of the
    compiled-model cache's key, computed without decoding anything."""
    files = image_files(root)[: 2 * MOST_IMAGES]
    return _whole([sha256_of(path) for path in files], [label_of(path, root) for path in files])


def _whole(digests: list[str], labels: list[int]) -> str:
    whole = hashlib.sha256()
    for digest, label in sorted(zip(digests, labels, strict=True)):
        whole.update(f"{digest} {label}\n".encode())
    return whole.hexdigest()


def load(root: Path = DEFAULT_DIR, limits: ImageLimits | None = None) -> CalibrationSet:
    limits = limits or ImageLimits()
    files = image_files(root)[: 2 * MOST_IMAGES]
    digests, labels, pixels = [], [], np.empty((len(files), *PIXELS_SHAPE), dtype=np.float32)
    for index, path in enumerate(files):
        if path.stat().st_size > limits.max_bytes:
            raise CalibrationError(
                f"{path.relative_to(root)}: over the limit of {limits.max_bytes} bytes per image"
            )
        data = path.read_bytes()
        try:
            decode_image(data, limits, out=pixels[index])
        except ImageProblem as problem:
            raise CalibrationError(f"{path.relative_to(root)}: {problem}") from None
        digests.append(hashlib.sha256(data).hexdigest())
        labels.append(label_of(path, root))
    calibrate, held_out = split(digests)
    label_array = np.array(labels, dtype=np.int64)
    return CalibrationSet(
        pixels[calibrate], pixels[held_out], label_array[held_out], _whole(digests, labels)
    )
