"""Run the Keras model as a compiled TensorFlow graph.

`model.predict` per request rebuilds its data pipeline each call and is 2-20x slower than one
compiled `tf.function`; eager `model(x)` dispatches op by op. A single trace with a dynamic batch
dimension serves every batch size without retracing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .contract import LABELS, PIXELS_SHAPE


class ModelFileError(ValueError):
    """The model file cannot be served: unreadable, not Keras, or not the contract's shape."""


class KerasRuntime:
    """A loaded Keras model behind one call: float32 [N, 224, 224, 3] in, float32 [N, 3] out."""

    def __init__(self, model):
        import tensorflow as tf

        check_contract_shape(model)
        self.model = model
        spec = tf.TensorSpec(shape=(None, *PIXELS_SHAPE), dtype=tf.float32)
        self._call = tf.function(
            lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True
        )

    @classmethod
    def load(cls, path: Path) -> KerasRuntime:
        import keras

        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # Keras raises many types for a file that is not a model.
            reason = (
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            )
            raise ModelFileError(f"{path} is not a loadable Keras model: {reason}") from exc
        return cls(model)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(pixels), dtype=np.float32)

    def warm_up(self) -> np.ndarray:
        """One inference on zeros: traces the graph so the first user request pays nothing."""
        return self(np.zeros((1, *PIXELS_SHAPE), dtype=np.float32))


def check_contract_shape(model) -> None:
    """Refuse a model whose input or output shape is not the contract's."""
    inputs = getattr(model, "inputs", None) or []
    outputs = getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(
            f"the model must have one input and one output, it has {len(inputs)} and {len(outputs)}"
        )
    in_shape = tuple(inputs[0].shape)[1:]
    out_shape = tuple(outputs[0].shape)[1:]
    if in_shape != PIXELS_SHAPE or out_shape != (len(LABELS),):
        raise ModelFileError(
            f"the model must take [N, {', '.join(map(str, PIXELS_SHAPE))}] and give "
            f"[N, {len(LABELS)}], it takes {list(in_shape)} and gives {list(out_shape)}"
        )
