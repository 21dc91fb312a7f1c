"""Calibration views (predictor/precision/views.py): made from the calibration photos only, the
same at every start, real pixels of the photo, and never more than the quantizer can afford."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.contract import CHANNEL_MEANS
from predictor.precision import views

pytestmark = pytest.mark.unit

MEANS = np.asarray(CHANNEL_MEANS, dtype=np.float32)


def photos(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (count, 32, 32, 3)).astype(np.float32) - MEANS).astype(np.float32)


def test_the_photos_come_first_then_views_and_the_same_every_time():
    """Photos first: NNCF's full bias correction reads only the first fifth of the samples,
    which must be the photos themselves."""
    pixels = photos(3)
    assert views.sample_count(3) == 3 * (1 + views.views_per_photo(3)) == 15
    for index in range(views.sample_count(3)):
        sample = views.sample(pixels, index)
        assert sample.shape == (1, 32, 32, 3) and sample.dtype == np.float32
        assert np.array_equal(sample, views.sample(pixels, index))  # seeded by position
        if index < 3:
            assert np.array_equal(sample[0], pixels[index])
        else:
            assert not any(np.array_equal(sample[0], photo) for photo in pixels)
    assert views.sample_count(22) // 5 >= 22  # the first fifth holds every photo


def test_a_view_is_a_crop_of_the_photo_under_one_brightness_within_range():
    # red numbers each pixel (row * 16 + column), green is 100 everywhere: a view's green is
    # 100 times its brightness, and its red over that brightness names the pixel it copied
    rows, cols = np.mgrid[0:16, 0:16]
    rgb = np.stack([rows * 16 + cols, np.full((16, 16), 100), np.full((16, 16), 50)], axis=-1)
    image = (rgb.astype(np.float32) - MEANS).astype(np.float32)
    for seed in range(8):
        view = views.view_of(image, np.random.default_rng(seed)) + MEANS
        assert view.min() >= 0 and view.max() <= 255
        brightness = view[..., 1] / 100
        assert np.allclose(brightness, brightness[0, 0], rtol=1e-5)
        assert 0.85 <= brightness[0, 0] <= 1.15
        copied = view[..., 0] / brightness[0, 0]
        unclipped = view[..., 0] < 255
        source = np.round(copied[unclipped]).astype(int)
        assert np.allclose(copied[unclipped], source, atol=1e-3)  # whole pixels, nearest
        taken_rows, taken_cols = np.unique(source // 16), np.unique(source % 16)
        # a crop of 60-95 % of each side, resized back
        assert 9 <= len(taken_rows) <= 16 and 9 <= len(taken_cols) <= 16
        assert not (len(taken_rows) == len(taken_cols) == 16)


def test_views_never_take_a_folder_past_the_samples_nncf_is_given():
    assert views.views_per_photo(22) == 4 and views.sample_count(22) == 110
    assert views.views_per_photo(50) == 2 and views.sample_count(50) == 150
    assert views.views_per_photo(200) == 0 and views.sample_count(200) == 200
    assert all(views.sample_count(n) <= max(n, views.MOST_SAMPLES) for n in range(1, 300))


def test_held_out_views_are_seeded_apart_from_the_calibrations():
    pixels = photos(2)
    judged = views.views_of(pixels, 4)
    assert judged.shape == (8, 32, 32, 3)
    calibrating = [views.sample(pixels, index)[0] for index in range(views.sample_count(2))]
    assert not any(np.array_equal(a, b) for a in judged for b in calibrating)
    assert np.array_equal(judged, views.views_of(pixels, 4))
