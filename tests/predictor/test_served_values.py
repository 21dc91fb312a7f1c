"""The served model's exact values: what the real predictor answers equals Keras' predict on the
tensor the course's code builds (test_preprocessing.py), for every image form and the course's
own photos."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from support import images
from support.clients import INFER, json_request, values_of

from .test_preprocessing import course_tensor


@pytest.mark.parametrize("name", list(images.FORMATS))
def test_served_values_equal_model_predict_on_the_course_tensor(name, predictor, keras_model):
    data = images.FORMATS[name]()
    expected = keras_model.predict(course_tensor(data)[np.newaxis], verbose=0)
    response = httpx.post(predictor.url + INFER, json=json_request([data]), timeout=60)
    assert response.status_code == 200, response.text
    _, values = values_of(response.json())
    np.testing.assert_allclose(values, expected, atol=1e-5, rtol=0)


def test_served_values_equal_model_predict_on_real_course_photos(predictor, keras_model):
    paths = images.original_photo_paths()
    assert len(paths) == 6
    photos = [path.read_bytes() for path in paths]
    expected = keras_model.predict(np.stack([course_tensor(p) for p in photos]), verbose=0)
    response = httpx.post(predictor.url + INFER, json=json_request(photos), timeout=60)
    assert response.status_code == 200, response.text
    _, values = values_of(response.json())
    np.testing.assert_allclose(values, expected, atol=1e-5, rtol=0)
