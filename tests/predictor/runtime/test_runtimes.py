"""Every runtime gives the plain Keras call's values, the fastest is chosen at load, and a
model OpenVINO cannot run is served by TensorFlow with one line saying why."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from predictor import default_model
from predictor.imaging import ImageLimits, decode_image
from predictor.runtime import runtimes
from predictor.runtime.base import ModelFileError
from support import images


def photos() -> np.ndarray:
    """Eight real course photos."""
    encoded = [p.read_bytes() for p in images.course_photo_paths(8)]
    assert len(encoded) == 8
    return np.stack([decode_image(data, ImageLimits()) for data in encoded])


@pytest.mark.parametrize("choice", ["tensorflow", "openvino"])
@pytest.mark.parametrize("which", ["demo model", "test model"])
def test_every_runtime_gives_the_keras_values(choice, which, model_file):
    import keras

    path = default_model.PATH if which == "demo model" else model_file
    pixels = photos()
    expected = keras.models.load_model(path).predict(pixels, verbose=0)
    served = runtimes.load_runtime(path, choice, threads=2)
    assert served.name == choice
    np.testing.assert_allclose(served(pixels), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(served(pixels[:1]), expected[:1], atol=1e-5, rtol=0)
    if choice == "openvino":  # the latency model and a throughput stream, each checked
        models = served.outputs_per_compiled_model(pixels)
        assert set(models) == {"latency", "throughput"}
        for values in models.values():
            np.testing.assert_allclose(values, expected, atol=1e-5, rtol=0)


def test_concurrent_calls_each_get_their_own_values(model_file):
    """Calls beside each other run on the throughput streams, alone on the latency model."""
    from concurrent.futures import ThreadPoolExecutor

    served = runtimes.load_runtime(model_file, "openvino", threads=2)
    assert served.parallel == 2
    pixels = photos()
    expected = [served(pixels[i : i + 1]) for i in range(len(pixels))]
    with ThreadPoolExecutor(served.parallel) as pool:
        for _ in range(5):
            answers = list(pool.map(lambda i: served(pixels[i : i + 1]), range(len(pixels))))
            for answer, alone in zip(answers, expected, strict=True):
                np.testing.assert_allclose(answer, alone, atol=1e-5, rtol=0)


def test_streams_are_capped_however_many_threads(model_file):
    """One stream per thread on a big node with no CPU limit would multiply activations past
    the pod's memory limit: at most MOST_STREAMS, the threads shared out among them."""
    served = runtimes.load_runtime(model_file, "openvino", threads=16)
    assert 2 <= served.parallel <= runtimes.MOST_STREAMS
    np.testing.assert_allclose(
        served.outputs_per_compiled_model(photos())["throughput"],
        served(photos()),
        atol=1e-5,
        rtol=0,
    )


def test_auto_measures_both_and_says_which_it_chose(model_file, caplog):
    with caplog.at_level(logging.INFO, logger="predictor.runtime.runtimes"):
        chosen = runtimes.load_runtime(model_file, "auto", threads=2)
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "predictor.runtime.runtimes" and r.getMessage().startswith("runtime ")
    ]
    assert len(lines) == 1
    assert lines[0].startswith(f"runtime {chosen.name}: ")
    assert "tensorflow" in lines[0] and "openvino" in lines[0] and "images/s" in lines[0]


def test_a_model_openvino_cannot_convert_falls_back_to_tensorflow(model_file, caplog, monkeypatch):
    def cannot_convert(*args, **kwargs):
        raise RuntimeError("Cannot create Transpose layer: unsupported op FancyOp")

    monkeypatch.setattr(runtimes.OpenVINORuntime, "from_keras", cannot_convert)
    with caplog.at_level(logging.WARNING, logger="predictor.runtime.runtimes"):
        chosen = runtimes.load_runtime(model_file, "auto", threads=2)
    assert chosen.name == "tensorflow"
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "predictor.runtime.runtimes"
    ]
    assert warnings == [
        "OpenVINO cannot run this model (Cannot create Transpose layer: unsupported op FancyOp): "
        "serving with TensorFlow"
    ]
    with pytest.raises(ModelFileError, match="OpenVINO cannot run this model"):
        runtimes.load_runtime(model_file, "openvino", threads=2)
