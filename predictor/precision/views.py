"""More calibration data from the same photos: each calibration photo also seen as a few views.

NNCF sets each activation's INT8 range from the smallest and largest values it sees over the
samples; a few dozen photos see few of the values a crop, a mirror or a darker photo gives, and
a request whose activation falls outside its range is clipped. Seen through views (a crop of
60-95 % of the side at a seeded place, mirrored half the time, brighter or darker by up to 15 %,
resized back to 224x224 nearest as the predictor resizes), the same photos give the ranges five
times the samples. The photos come first and the views after: NNCF's full bias correction reads
only the first fifth of the samples (nncf 3.4), which is then every photo once, no view.

Views are made from the calibration share only, never from a held-out photo, and the same
photos always give the same views (seeded by position), so a restart decides the same.
"""

from __future__ import annotations

import numpy as np

from ..contract import CHANNEL_MEANS

VIEWS_PER_PHOTO = 4
# Photos and views together: NNCF's statistics and bias correction take time per sample.
MOST_SAMPLES = 150
SEED = 20261202
_MEANS = np.asarray(CHANNEL_MEANS, dtype=np.float32)


def views_per_photo(photos: int) -> int:
    """How many views each of `photos` calibration photos adds (fewer for a large folder)."""
    return max(0, min(VIEWS_PER_PHOTO, MOST_SAMPLES // max(photos, 1) - 1))


def sample_count(photos: int) -> int:
    """The photos and their views: the length of the calibration dataset."""
    return photos * (1 + views_per_photo(photos))


def sample(pixels: np.ndarray, index: int) -> np.ndarray:
    """Calibration sample `index` of `pixels` [N, H, W, 3] as a batch of one: the N photos
    first, then a view of each photo, then another, and so on."""
    view, photo = divmod(index, len(pixels))
    image = pixels[photo]
    if view:
        image = view_of(image, np.random.default_rng([SEED, photo, view]))
    return image[None]


def views_of(pixels: np.ndarray, per_photo: int, seed: int = SEED + 1) -> np.ndarray:
    """`per_photo` views of each image of `pixels` [N, H, W, 3], seeded apart from the
    calibration's: how bench/quantization.py and the tests judge held-out photos more finely."""
    return np.stack(
        [
            view_of(image, np.random.default_rng([seed, index, view]))
            for index, image in enumerate(pixels)
            for view in range(per_photo)
        ]
    )


def view_of(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop of `image` (model pixels: RGB minus the course's means), maybe mirrored, brighter
    or darker, resized back to the image's size by nearest-neighbour sampling."""
    height, width = image.shape[:2]
    fraction = rng.uniform(0.6, 0.95)
    crop_h, crop_w = int(height * fraction), int(width * fraction)
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    rows = top + np.arange(height) * crop_h // height
    cols = left + np.arange(width) * crop_w // width
    if rng.random() < 0.5:
        cols = cols[::-1]
    rgb = (image[rows[:, None], cols[None, :]] + _MEANS) * rng.uniform(0.85, 1.15)
    return (np.clip(rgb, 0.0, 255.0) - _MEANS).astype(np.float32)
