"""KServe 0.21's stock custom model for a Keras model, written as KServe's custom-model docs
show one: a `kserve.Model` subclass whose `load` reads the model and whose `predict` takes the
V2 `InferRequest` and returns an `InferResponse`, served by `kserve.ModelServer` with its own
defaults (one worker, no batching) but for per-request logging. Runs in its own virtualenv
(bench/peers/kserve/requirements.txt); bench/peers.py starts it:

    python keras_model.py --model_name cats-dogs-other --model_path m.keras [--tuned]
        --http_port P --grpc_port Q

Variants: plain, `model.predict(x)` on each request; `--tuned`, the model's call wrapped once
in a `tf.function` (any batch size, traced at load) and called directly. The one input
(bench/peers.py sends `pixels`, FP32 [N, 224, 224, 3]) goes to the model as it is; the answer
is the model's output as `values`, FP32 [N, 3].

Two changes from the docs, neither on the request path's work:
- the binding: KServe hard-codes 0.0.0.0 (REST) and [::] (gRPC); the benchmark listens on
  127.0.0.1 only, so both addresses are rewritten at start;
- no log line per request (KServe's latency and trace lines, uvicorn's access log, the gRPC
  method line), as this predictor runs by default (LOG_REQUESTS off) and MLServer with `debug`
  off: start-up, warnings and errors are still logged.
"""

from __future__ import annotations

import argparse
import logging

import keras
import numpy as np
import tensorflow as tf
import uvicorn
from grpc.aio import _server as grpc_aio_server
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid


class KerasModel(Model):
    def __init__(self, name: str, path: str, tuned: bool):
        super().__init__(name)
        self.path, self.tuned = path, tuned
        self.load()

    def load(self) -> bool:
        model = keras.saving.load_model(self.path)
        if self.tuned:
            spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
            call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
            call(tf.zeros([1, *model.input_shape[1:]]))  # traced now, not on the first request
            self._call = lambda x: call(x).numpy()
        else:
            # verbose=0: no progress bar printed on each call; otherwise as documented.
            self._call = lambda x: model.predict(x, verbose=0)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        pixels = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        values = np.asarray(self._call(pixels), dtype=np.float32)
        output = InferOutput(name="values", shape=list(values.shape), datatype="FP32")
        output.set_data_from_numpy(values, binary_data=False)
        return InferResponse(
            response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=[output]
        )


def loopback_only() -> None:
    """Bind REST and gRPC to 127.0.0.1 where KServe hard-codes every address."""
    config_init = uvicorn.Config.__init__

    def config(self, app, *args, **kwargs):
        config_init(self, app, *args, **{**kwargs, "host": "127.0.0.1"})

    uvicorn.Config.__init__ = config
    add_port = grpc_aio_server.Server.add_insecure_port

    def insecure_port(self, address: str) -> int:
        return add_port(self, "127.0.0.1:" + address.rsplit(":", 1)[1])

    grpc_aio_server.Server.add_insecure_port = insecure_port


def no_request_logs() -> None:
    """No line per request: uvicorn's access log, the REST timing middleware's two trace lines
    (the middleware itself still runs), the gRPC interceptor's method line."""
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("kserve").addFilter(
        lambda record: not str(record.msg).startswith("grpc method:")
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--tuned", action="store_true")
    args, _ = parser.parse_known_args()
    loopback_only()
    server = ModelServer(enable_latency_logging=False)  # configures KServe's logging
    no_request_logs()
    server.start([KerasModel(args.model_name, args.model_path, args.tuned)])
