"""The photos a reduced precision is calibrated and judged on: one folder, split in two.

Layout: image files anywhere under the folder; those in a sub-folder named after a label
(`cat/`, `dog/`, `other/`, any case, as Keras's `image_dataset_from_directory` reads a dataset)
are labelled with it, the others are used for agreement only. Each photo is decoded exactly as
a request's is (imaging.py), then the set is split by the SHA-256 of each file's bytes: the
first half in that order calibrates the quantizer, the second is held out for the guard. The
split does not depend on file names or listing order, so the same folder always gives the same
halves, and the guard never sees a photo the calibration saw.

The default folder is `predictor/calibration/`: 30 photos from the course's dataset (see its
README for their source and licence), resized to 224x224 as the predictor resizes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contract import LABELS, PIXELS_SHAPE
from .imaging import ImageLimits, ImageProblem, decode_image

DEFAULT_DIR = Path(__file__).parent / "calibration"
SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# NNCF's statistics settle within a few hundred images; more only lengthen the load.
MOST_IMAGES = 600


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
    """Indices of (calibration, held-out): alternating in the order of the files' digests."""
    order = sorted(range(len(digests)), key=lambda i: digests[i])
    return order[0::2], order[1::2]


def fingerprint(root: Path = DEFAULT_DIR) -> str:
    """SHA-256 over the folder's photos and labels, as `load` would read them: part of the
    compiled-model cache's key, computed without decoding anything."""
    files = image_files(root)[: 2 * MOST_IMAGES]
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
    return _whole(digests, [label_of(path, root) for path in files])


def _whole(digests: list[str], labels: list[int]) -> str:
    whole = hashlib.sha256()
    for digest, label in sorted(zip(digests, labels, strict=True)):
        whole.update(f"{digest} {label}\n".encode())
    return whole.hexdigest()


def load(root: Path = DEFAULT_DIR, limits: ImageLimits | None = None) -> CalibrationSet:
    limits = limits or ImageLimits()
    files = image_files(root)[: 2 * MOST_IMAGES]
    contents = [path.read_bytes() for path in files]
    digests = [hashlib.sha256(data).hexdigest() for data in contents]
    labels = np.array([label_of(path, root) for path in files], dtype=np.int64)
    pixels = np.empty((len(files), *PIXELS_SHAPE), dtype=np.float32)
    for index, (path, data) in enumerate(zip(files, contents, strict=True)):
        try:
            decode_image(data, limits, out=pixels[index])
        except ImageProblem as problem:
            raise CalibrationError(f"{path.relative_to(root)}: {problem}") from None
    calibrate, held_out = split(digests)
    digest = _whole(digests, labels.tolist())
    return CalibrationSet(pixels[calibrate], pixels[held_out], labels[held_out], digest)
