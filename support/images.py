"""Encoded test images in every format the preprocessing must match Keras on.

Synthetic but structured (gradients, edges and noise), so nearest-neighbour sampling, colour
conversion and EXIF handling all change the values if done differently from Keras. And the
real photos: the labelled course photos (the predictor's default calibration folder), six of
them at their original size, and the course's own cat.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image

from predictor.contract import LABELS
from predictor.precision.calibration import DEFAULT_DIR, image_files, label_of

ROOT = Path(__file__).resolve().parents[1]
# The 85 labelled course photos the project owns, resized to 224x224 as the predictor decodes
# them: the predictor's default calibration folder, one sub-folder per label (credited in its
# README.md). Six of them are also kept at their original size, in tests/data.
COURSE_PHOTOS = DEFAULT_DIR
ORIGINAL_PHOTOS = ROOT / "tests" / "data" / "course-photos" / "originals"
CAT = ROOT / "tests" / "fixtures" / "cat.png"  # the course's cat


def _rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x ^ y) & 255], axis=-1
    )
    noise = rng.integers(0, 40, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb_png(width: int = 300, height: int = 200, seed: int = 0) -> bytes:
    return encode(Image.fromarray(_rgb(width, height, seed), "RGB"), "PNG")


def rgb_jpeg(width: int = 640, height: int = 480, seed: int = 0) -> bytes:
    return encode(Image.fromarray(_rgb(width, height, seed), "RGB"), "JPEG", quality=90)


def rgba_png() -> bytes:
    rgb = _rgb(257, 190, 1)
    alpha = np.linspace(0, 255, 257 * 190, dtype=np.uint8).reshape(190, 257, 1)
    return encode(Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA"), "PNG")


def palette_gif() -> bytes:
    image = Image.fromarray(_rgb(320, 240, 2), "RGB").quantize(colors=64)
    return encode(image, "GIF")


def greyscale_png() -> bytes:
    return encode(Image.fromarray(_rgb(200, 300, 3)[..., 0], "L"), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(_rgb(400, 300, 4), "RGB").convert("CMYK"), "JPEG", quality=92)


def sixteen_bit_png() -> bytes:
    values = (_rgb(230, 230, 5)[..., 1].astype(np.uint16) * 257).astype(np.uint16)
    image = Image.fromarray(values)  # uint16 -> mode I;16
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I"), "expected a 16-bit PNG"
    return data


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display; Keras ignores it, so must we
    return encode(Image.fromarray(_rgb(480, 320, 6), "RGB"), "JPEG", exif=exif)


def tiny_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), (200, 30, 90)), "PNG")


@functools.cache
def large_jpeg() -> bytes:
    return rgb_jpeg(4000, 3000, seed=7)


@functools.cache
def decompression_bomb_png() -> bytes:
    """A small PNG that declares 30000x30000 pixels: one-bit, compresses to almost nothing."""
    return encode(Image.new("1", (30000, 30000)), "PNG", optimize=True)


FORMATS = {
    "rgb-png": rgb_png,
    "rgba-png": rgba_png,
    "palette-gif": palette_gif,
    "greyscale-png": greyscale_png,
    "cmyk-jpeg": cmyk_jpeg,
    "16bit-png": sixteen_bit_png,
    "exif-rotated-jpeg": exif_rotated_jpeg,
    "1x1-png": tiny_png,
    "4000x3000-jpeg": large_jpeg,
}


def labelled_course_photos() -> list[tuple[Path, str]]:
    """(path, label) of each labelled course photo, sorted by file name; the label as its
    folder names it, in lower case (cat, dog, other)."""
    labelled = []
    for path in image_files(COURSE_PHOTOS):
        label = label_of(path, COURSE_PHOTOS)
        if label >= 0:
            labelled.append((path, LABELS[label].lower()))
    return sorted(labelled, key=lambda photo: (photo[0].name, photo[1]))


def course_photo_paths(count: int) -> list[Path]:
    """The first `count` course photos (by file name), as the model sees them (224x224)."""
    return [path for path, _ in labelled_course_photos()[:count]]


def original_photo_paths() -> list[Path]:
    """The six course photos kept at their original size (the resize checked on real photos)."""
    return sorted(ORIGINAL_PHOTOS.glob("*.png"))


def course_photos_calibration_never_saw():
    """The labelled course photos of the default calibration folder that `calibration.load()`
    did not put in its calibration share, as the model sees them: (pixels [N, 224, 224, 3],
    label indices [N]), by file name.
    What the INT8 guard's claim is checked on, in the suite and in bench.precision."""
    from predictor.imaging import ImageLimits, decode_image
    from predictor.precision import calibration

    seen = {p.tobytes() for p in calibration.load().calibration}
    names = [label.lower() for label in LABELS]
    pixels, labels = [], []
    for path, label in labelled_course_photos():
        decoded = decode_image(path.read_bytes(), ImageLimits())
        if decoded.tobytes() not in seen:
            pixels.append(decoded)
            labels.append(names.index(label))
    return np.stack(pixels), np.array(labels)
