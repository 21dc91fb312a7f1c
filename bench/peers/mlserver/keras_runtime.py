"""An MLServer custom runtime for a Keras model, written as MLServer's docs show one: an
`MLModel` subclass whose `load` reads the model and whose `predict` takes the V2 request and
returns the V2 response. Runs in MLServer's own virtualenv (bench/peers/mlserver/
requirements.txt), imported by `mlserver start` through PYTHONPATH; bench/peers.py starts it.

model-settings.json chooses the variant with `parameters.extra.tuned`:
- false, "as documented": `model.predict(x)` on each (adaptively batched) request;
- true, "tuned": the model's call wrapped once in a `tf.function` (any batch size, traced at
  load) and called directly, without `predict`'s per-call set-up.
The one input (whatever its name: bench/peers.py sends `pixels`, FP32 [N, 224, 224, 3]) goes to
the model as it is; the answer is the model's output as `values`, FP32 [N, 3].
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class KerasRuntime(MLModel):
    async def load(self) -> bool:
        model = keras.saving.load_model(await get_model_uri(self.settings))
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        if extra.get("tuned"):
            spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
            call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
            call(tf.zeros([1, *model.input_shape[1:]]))  # traced now, not on the first request
            self._call = lambda x: call(x).numpy()
        else:
            # verbose=0: no progress bar printed on each call; otherwise as documented.
            self._call = lambda x: model.predict(x, verbose=0)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        values = np.asarray(self._call(pixels), dtype=np.float32)
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[NumpyCodec.encode_output("values", values)],
        )
