"""Session fixtures: a small Keras model of the contract's shape, and the real predictor on it."""

from __future__ import annotations

import os

import pytest

from support.contract_model import build_contract_model
from support.servers import start_predictor, wait_ready

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    # A fixed batch limit: the batching tests need calls of more than one image, which the
    # measured limit (test_default_model) may not allow for this tiny model.
    process = start_predictor(model_file, tmp_path_factory.mktemp("logs"), MAX_BATCH_SIZE="8")
    try:
        yield wait_ready(process)
    finally:
        process.stop()
