"""Turn encoded image bytes into the tensor the course's model was trained on.

This must match `keras.utils.load_img(f, target_size=(224, 224))` + `img_to_array` + the mean
subtraction of the course's `load_image` bit for bit, so it calls Pillow exactly as Keras does:
`Image.open`, `convert("RGB")` unless already RGB, then a nearest-neighbour resize of the whole
image unless it already has the target size. No EXIF rotation, no aspect-ratio crop, no draft-mode
JPEG shortcut: each would change the values the model sees. Pure functions, no I/O.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from .contract import CHANNEL_MEANS, IMAGE_SIZE


@dataclass(frozen=True)
class ImageLimits:
    """What one image may cost: encoded bytes and decoded pixels (a decompression-bomb guard)."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


class ImageProblem(ValueError):
    """An image cannot be used; the message says why in words a client can act on."""


class ImageOverLimit(ImageProblem):
    """An image is over one of the `ImageLimits`."""


# The course subtracts its means in float64 and rounds once to float32. A channel's value is one
# of 256 bytes, so that result is a table lookup: the same float32s, computed once, and a
# fifth of the memory traffic of converting every pixel to float64 and back (the decode
# threads' largest cost after the JPEG decoder itself).
_MEANS_BY_VALUE = np.ascontiguousarray(
    (np.arange(256, dtype=np.float64)[:, np.newaxis] - np.asarray(CHANNEL_MEANS)).T
).astype(np.float32)  # [channel, byte value]


# What a request may send, and why these: the course's photos are JPEG and PNG, browsers and
# phones send JPEG, PNG, GIF, WebP, and BMP is what Windows tools save. Pillow opens dozens more
# (TIFF with float pixels and many codecs, PSD, ICO, ...): each is code an anonymous-looking
# image can reach, and a float TIFF costs 4 bytes a pixel before its conversion to RGB. The
# course's `load_img` opens whatever Pillow opens; a photo in another format is one `convert`
# away, and the answer names the formats accepted.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
FORMAT_NAMES = "JPEG, PNG, GIF, BMP or WebP"
# Bytes a pixel takes in each mode as Pillow stores it: one band in a byte, two bytes for 16-bit
# grey, four for everything else (RGB included: Pillow pads it to four bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2}
_STORED = 4  # LA, PA, RGB, RGBA, YCbCr, CMYK, I, F
# What a format's decoder holds beside the image, per pixel: libwebp decodes into two RGBA
# canvases before Pillow copies the result; libjpeg keeps every DCT coefficient (2 bytes a
# coefficient, 3 components) of a progressive file until its last scan.
_WEBP_EXTRA = 12
_PROGRESSIVE_JPEG_EXTRA = 6
# The rest, measured at under a byte a pixel: row buffers, the resize's index tables.
_SLACK = 1


def decode_cost(image: Image.Image) -> int:
    """Bytes decoding an image `open_image` read holds at its peak, from its header (no pixel
    decoded yet): its pixels as stored, their RGB copy unless already RGB, its decoder's own
    buffers. Measured against real decodes of every accepted format and mode (test_imaging)."""
    pixels = image.width * image.height
    per_pixel = _MODE_BYTES.get(image.mode, _STORED) + _SLACK
    if image.mode != "RGB":
        per_pixel += _STORED
    if image.format == "WEBP":
        per_pixel += _WEBP_EXTRA
    elif image.format == "JPEG" and (
        image.info.get("progressive") or image.info.get("progression")
    ):
        per_pixel += _PROGRESSIVE_JPEG_EXTRA
    return pixels * per_pixel + (1 << 20)


def photo_decode_cost(limits: ImageLimits) -> int:
    """What the largest ordinary photo allowed takes to decode: a baseline RGB JPEG."""
    return limits.max_pixels * (_STORED + _SLACK) + (1 << 20)


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """The image's header read (no pixel decoded yet): one of `FORMATS`, within the limits."""
    if not data:
        raise ImageProblem("empty image: 0 bytes")
    if len(data) > limits.max_bytes:
        raise ImageOverLimit(
            f"{len(data)} bytes is over the limit of {limits.max_bytes} bytes per image"
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its own limit raises) on huge images; our own pixel
            # limit below decides, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageOverLimit(f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageProblem(f"not an image in an accepted format ({FORMAT_NAMES})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageProblem(f"cannot decode image: {exc}") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageOverLimit(
            f"{width}x{height} pixels is over the limit of {limits.max_pixels} pixels"
        )
    return image


def decode_opened(image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
    """Decode an image `open_image` read into a float32 (224, 224, 3) tensor, means subtracted;
    into `out` when given (a row of the batch the model will see: no copy afterwards)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if image.mode != "RGB":
                image = image.convert("RGB")
            target = (IMAGE_SIZE[1], IMAGE_SIZE[0])
            if image.size != target:
                image = image.resize(target, Image.Resampling.NEAREST)
            pixels = np.asarray(image, dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise ImageOverLimit(f"image is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt files surface from Pillow's decoders as these.
        raise ImageProblem(f"cannot decode image: {exc}") from None
    return subtract_means(pixels, out)


def decode_image(data: bytes, limits: ImageLimits, out: np.ndarray | None = None) -> np.ndarray:
    """Decode one encoded image file into a float32 (224, 224, 3) tensor, means subtracted;
    into `out` when given."""
    return decode_opened(open_image(data, limits), out)


def subtract_means(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB pixels minus the course's means, as float32: bit for bit the course's
    `float64(pixels) - means` rounded once to float32."""
    if out is None:
        out = np.empty(pixels.shape, dtype=np.float32)
    for channel in range(3):
        np.take(_MEANS_BY_VALUE[channel], pixels[..., channel], out=out[..., channel], mode="clip")
    return out
