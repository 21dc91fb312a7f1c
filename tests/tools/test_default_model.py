"""The committed demo model's backbone is EfficientNet-Lite0 as the PyTorch reference computes
it. Runs where torch and the reference packages are installed (see tools/convert_lite0.py);
skips elsewhere, as in the default test environment, which has no torch."""

from __future__ import annotations

import numpy as np
import pytest

from predictor import default_model

pytestmark = pytest.mark.unit


def test_keras_backbone_matches_the_pytorch_reference_within_1e_4():
    pytest.importorskip("torch", reason="torch is not installed: the conversion check needs it")
    pytest.importorskip(
        "efficientnet_lite_pytorch", reason="the PyTorch reference is not installed"
    )
    import keras

    from tools.convert_lite0 import load_reference, reference_features

    model = keras.models.load_model(default_model.PATH)
    backbone = model.get_layer("frozen_front").get_layer("efficientnet_lite0")
    rng = np.random.default_rng(1)
    rescaled = ((rng.integers(0, 256, (4, 224, 224, 3)) - 127) / 128).astype(np.float32)
    ours = backbone.predict(rescaled, verbose=0)
    theirs = reference_features(load_reference(), rescaled)
    difference = float(np.abs(ours - theirs).max())
    print(f"max |Keras - PyTorch| over 4x1280 pooled features: {difference:.2e}")
    assert difference < 1e-4


def test_the_model_takes_the_contract_tensor_and_rescales_inside():
    import keras

    model = keras.models.load_model(default_model.PATH)
    assert tuple(model.input.shape) == (None, 224, 224, 3)
    assert tuple(model.output.shape) == (None, 3)
    rescaling = model.get_layer("frozen_front").get_layer("lite0_rescaling")
    means = np.array([123.68, 116.779, 103.939], dtype=np.float32)
    contract = np.array([[[[255.0, 0.0, 127.0]]]], dtype=np.float32) - means
    expected = (np.array([255.0, 0.0, 127.0]) - 127) / 128
    np.testing.assert_allclose(np.asarray(rescaling(contract))[0, 0, 0], expected, atol=1e-5)
