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


def decode_image(data: bytes, limits: ImageLimits, out: np.ndarray | None = None) -> np.ndarray:
    """Decode one encoded image file into a float32 (224, 224, 3) tensor, means subtracted;
    into `out` when given (a row of the batch the model will see: no copy afterwards)."""
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
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageOverLimit(
                    f"{width}x{height} pixels is over the limit of {limits.max_pixels} pixels"
                )
            if image.mode != "RGB":
                image = image.convert("RGB")
            target = (IMAGE_SIZE[1], IMAGE_SIZE[0])
            if image.size != target:
                image = image.resize(target, Image.Resampling.NEAREST)
            pixels = np.asarray(image, dtype=np.uint8)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageOverLimit(f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageProblem("not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, …)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt files surface from Pillow's decoders as these.
        raise ImageProblem(f"cannot decode image: {exc}") from None
    return subtract_means(pixels, out)


def subtract_means(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB pixels minus the course's means, as float32: bit for bit the course's
    `float64(pixels) - means` rounded once to float32."""
    if out is None:
        out = np.empty(pixels.shape, dtype=np.float32)
    for channel in range(3):
        np.take(_MEANS_BY_VALUE[channel], pixels[..., channel], out=out[..., channel], mode="clip")
    return out
