"""Session fixtures: a small Keras model of the contract's shape, and the real predictor on it."""

from __future__ import annotations

import os

import pytest

from .servers import start_predictor, wait_ready

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_contract_model(path, seed: int = 0):
    """A small model with the course's outside: 224x224x3 in, three sigmoids out.

    Its convolutions cost about 5 ms per image here, enough for a few concurrent requests to
    keep it busy, so tests under load load the model and not only the image decoders."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Rescaling(1 / 128)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.save(path)
    return model


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "final_model.keras"
    build_contract_model(path)
    return path


@pytest.fixture(scope="session")
def keras_model(model_file):
    """The same model, loaded in the test process the way the course's app loads it."""
    import keras

    return keras.models.load_model(model_file)


@pytest.fixture(scope="session")
def predictor(model_file, tmp_path_factory):
    process = start_predictor(model_file, tmp_path_factory.mktemp("logs"))
    try:
        yield wait_ready(process)
    finally:
        process.stop()
