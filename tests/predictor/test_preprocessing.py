"""The predictor sees exactly the tensor the course's code builds (the model's values, served:
test_served_values.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from predictor.imaging import ImageLimits, decode_image
from support import images

pytestmark = pytest.mark.unit

COURSE_MEANS = [123.68, 116.779, 103.939]


def course_tensor(data: bytes) -> np.ndarray:
    """The course's `load_image`: keras.utils.load_img + img_to_array, minus a Python list."""
    import keras

    image = keras.utils.load_img(io.BytesIO(data), target_size=(224, 224))
    return keras.utils.img_to_array(image) - COURSE_MEANS  # float64, as in the course


@pytest.mark.parametrize("name", list(images.FORMATS))
def test_tensor_is_the_course_tensor_to_float32_rounding(name):
    data = images.FORMATS[name]()
    ours = decode_image(data, ImageLimits())
    assert ours.dtype == np.float32
    assert ours.shape == (224, 224, 3)
    np.testing.assert_array_equal(ours, course_tensor(data).astype(np.float32))


def test_exif_orientation_is_ignored_as_keras_ignores_it():
    from PIL import Image, ImageOps

    data = images.exif_rotated_jpeg()
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6
    stored = Image.open(io.BytesIO(data))
    as_stored = np.asarray(stored.resize((224, 224), Image.NEAREST), dtype=np.float32)
    as_displayed = np.asarray(
        ImageOps.exif_transpose(stored).resize((224, 224), Image.NEAREST), dtype=np.float32
    )
    ours = decode_image(data, ImageLimits())
    np.testing.assert_array_equal(ours, (as_stored - COURSE_MEANS).astype(np.float32))
    assert not np.array_equal(ours, (as_displayed - COURSE_MEANS).astype(np.float32))
