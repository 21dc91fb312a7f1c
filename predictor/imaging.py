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


_MEANS = np.asarray(CHANNEL_MEANS, dtype=np.float64)


def decode_image(data: bytes, limits: ImageLimits) -> np.ndarray:
    """Decode one encoded image file into a float32 (224, 224, 3) tensor, means subtracted."""
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
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageOverLimit(
                    f"{width}x{height} pixels is over the limit of {limits.max_pixels} pixels"
                )
            if image.mode != "RGB":
                image = image.convert("RGB")
            target = (IMAGE_SIZE[1], IMAGE_SIZE[0])
            if image.size != target:
                image = image.resize(target, Image.NEAREST)
            pixels = np.asarray(image, dtype=np.float32)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageOverLimit(f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageProblem("not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, …)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt files surface from Pillow's decoders as these.
        raise ImageProblem(f"cannot decode image: {exc}") from None
    return subtract_means(pixels)


def subtract_means(pixels: np.ndarray) -> np.ndarray:
    """Subtract the course's means in float64 and round once to float32, as the course does."""
    return (pixels.astype(np.float64) - _MEANS).astype(np.float32)
