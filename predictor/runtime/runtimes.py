"""Run the model with the fastest runtime this CPU offers, behind one call.

- `tensorflow`: the Keras model as one compiled `tf.function` with a dynamic batch dimension
  (`model.predict` per request rebuilds its data pipeline each call and is 2-20x slower; eager
  `model(x)` dispatches op by op).
- `openvino`: the same model exported to a SavedModel and converted by OpenVINO at load time,
  in full FP32 (`INFERENCE_PRECISION_HINT=f32`: on CPUs with bf16 units OpenVINO would
  otherwise compute in bf16 and drift from Keras).
- `auto` (default): convert, check that OpenVINO gives Keras's values (1e-4), time both on the
  same batch, serve with the faster. A model OpenVINO cannot convert, or converts wrong, is
  served by TensorFlow with one log line saying why.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..contract import LABELS, PIXELS_SHAPE
from .base import ModelFileError, Runtime, first_line
from .cpus import available_cpus
from .measure import images_per_second

logger = logging.getLogger(__name__)

# What --runtime may ask for; decisions.RUNTIMES: what a load serves with (no "auto").
RUNTIME_CHOICES = ("auto", "openvino", "tensorflow")


class KerasRuntime:
    """A loaded Keras model behind one call: float32 [N, 224, 224, 3] in, float32 [N, 3] out."""

    name = "tensorflow"
    precision = "fp32"
    parallel = 1  # one call at a time: TensorFlow spreads it over its own thread pool

    def __init__(self, model):
        import tensorflow as tf

        check_contract_shape(model)
        self.model = model
        spec = tf.TensorSpec(shape=(None, *PIXELS_SHAPE), dtype=tf.float32)
        self._call = tf.function(
            lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True
        )

    @classmethod
    def load(cls, path: Path, threads: int | None = None) -> KerasRuntime:
        from .model_file import check_model_file

        check_model_file(path)  # a zip bomb refused before Keras inflates it (model_file.py)
        import keras
        import tensorflow as tf

        if threads:  # before TensorFlow creates its thread pools, i.e. before any op runs
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
            except RuntimeError:
                pass  # already initialised in this process (a second model): keep its pools
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # Keras raises many types for a file that is not a model.
            reason = first_line(exc)
            raise ModelFileError(f"{path} is not a loadable Keras model: {reason}") from exc
        return cls(model)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(pixels), dtype=np.float32)


# Each stream holds its own activations (tens of MB for VGG16), so on a large node with no CPU
# limit one stream per core would multiply memory past the pod's limit; past a few streams the
# threads are shared out among them instead (8 cores: 4 streams of 2 threads).
MOST_STREAMS = 4


class OpenVINORuntime:
    """The Keras model converted to OpenVINO, compiled for this CPU in FP32, twice:

    - for latency: one stream over every thread, so a lone image is answered soonest;
    - for throughput (with 2+ threads): one single-threaded stream per thread (at most
      `MOST_STREAMS`, sharing the threads out beyond that). Under load,
      two one-thread calls on two cores give more images per second than two-thread calls in
      turn, which spend part of their time waiting on each other (a sibling thread at a
      synchronisation point, or pre-empted by the decoders and the event loop).

    Up to `parallel` calls may run at once (model.py runs that many inference threads). A call
    that starts while no other runs takes the latency model; one that starts beside another
    takes a throughput stream. So an idle server answers at the latency model's speed, and a
    busy one moves to the streams by itself.
    """

    name = "openvino"

    def __init__(self, latency, throughput=None, *, source=None, precision: str = "fp32"):
        self.precision = precision
        # The OpenVINO model it was compiled from, kept while the load saves or quantizes it;
        # loading.py drops it then (the compiled models hold their own copy of the weights).
        self.source = source
        self._latency = latency.create_infer_request()
        self._streams: queue.SimpleQueue = queue.SimpleQueue()
        self.parallel = 1
        if throughput is not None:
            self.parallel = int(throughput.get_property("NUM_STREAMS"))
            for _ in range(self.parallel):
                self._streams.put(throughput.create_infer_request())
        self._lock = threading.Lock()
        self._running = 0
        self._latency_busy = False

    @classmethod
    def from_keras(cls, model, threads: int | None = None) -> OpenVINORuntime:
        return cls.compile(convert(model), threads)

    @classmethod
    def compile(
        cls, converted, threads: int | None = None, precision: str = "fp32"
    ) -> OpenVINORuntime:
        """Compile an OpenVINO model (converted, quantized, or read from the cache) for this
        CPU. `precision` "bf16" computes in bfloat16; otherwise FP32 (an INT8 model's
        quantized operations run in INT8 either way)."""
        import openvino as ov

        core = ov.Core()
        # No CPU pinning: pinned inference threads starve the event loop's thread of its core,
        # and probes waited up to 300 ms under load (measured); unpinned, they stay < 200 ms.
        common = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "ENABLE_CPU_PINNING": "NO",
        }
        threads = threads or available_cpus()
        latency = core.compile_model(
            converted,
            "CPU",
            {**common, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)},
        )
        if threads < 2:
            return cls(latency, source=converted, precision=precision)
        throughput = core.compile_model(
            converted,
            "CPU",
            {
                **common,
                "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": str(min(threads, MOST_STREAMS)),
                "INFERENCE_NUM_THREADS": str(threads),
            },
        )
        return cls(latency, throughput, source=converted, precision=precision)

    def outputs_per_compiled_model(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs of the latency model and of a throughput stream, to check both."""
        results = {"latency": _infer(self._latency, pixels)}
        if self.parallel > 1:
            request = self._streams.get()
            try:
                results["throughput"] = _infer(request, pixels)
            finally:
                self._streams.put(request)
        return results

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            alone = self._running == 0 and not self._latency_busy
            self._running += 1
            self._latency_busy |= alone
        request = self._latency if alone else self._streams.get()
        try:
            return _infer(request, pixels)
        finally:
            if not alone:
                self._streams.put(request)
            with self._lock:
                self._running -= 1
                if alone:
                    self._latency_busy = False


def convert(model):
    """The Keras model as an OpenVINO model, through a SavedModel (OpenVINO reads no .keras)."""
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="openvino-export-") as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        return ov.convert_model(folder)


def _infer(request, pixels: np.ndarray) -> np.ndarray:
    outputs = request.infer([np.ascontiguousarray(pixels, dtype=np.float32)])
    return np.array(outputs[0], dtype=np.float32)  # a copy: the request is reused


def load_runtime(path: Path, choice: str = "auto", threads: int | None = None) -> Runtime:
    """The runtime to serve `path` with, and warmed up: see the module's docstring."""
    threads = threads or available_cpus()
    keras_runtime = KerasRuntime.load(path, threads)
    probe = np.random.default_rng(0).uniform(-124, 152, (4, *PIXELS_SHAPE)).astype(np.float32)
    expected = keras_runtime(probe)
    if choice == "tensorflow":
        return keras_runtime
    try:
        openvino_runtime = OpenVINORuntime.from_keras(keras_runtime.model, threads)
        difference = max(
            float(np.abs(values - expected).max())
            for values in openvino_runtime.outputs_per_compiled_model(probe).values()
        )
    except Exception as exc:  # any converter failure: serve with TensorFlow instead
        reason = first_line(exc)
        if choice == "openvino":
            raise ModelFileError(f"OpenVINO cannot run this model: {reason}") from exc
        logger.warning("OpenVINO cannot run this model (%s): serving with TensorFlow", reason)
        return keras_runtime
    if difference > 1e-4:
        message = f"OpenVINO's outputs differ from Keras's by {difference:.1e}"
        if choice == "openvino":
            raise ModelFileError(message)
        logger.warning("%s: serving with TensorFlow", message)
        return keras_runtime
    if choice == "openvino":
        return openvino_runtime
    speeds = {
        runtime.name: images_per_second(runtime, probe).rate
        for runtime in (keras_runtime, openvino_runtime)
    }
    chosen = openvino_runtime if speeds["openvino"] >= speeds["tensorflow"] else keras_runtime
    logger.info(
        "runtime %s: %s (outputs within %.1e of Keras)",
        chosen.name,
        ", ".join(f"{name} {rate:.1f} images/s" for name, rate in speeds.items()),
        difference,
    )
    return chosen


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
