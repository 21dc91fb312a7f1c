"""The KServe model: glue between KServe's data plane and the decode / inference functions.

KServe awaits `preprocess`, `predict` and `postprocess` on its event loop. Every step that costs
CPU time (base64, image decoding, the model call) runs in a thread pool instead, so probes and
other requests are answered while the model works (kserve issues #3950, #5019).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kserve
import numpy as np
from kserve import InferRequest
from kserve.errors import ModelNotReady

from . import contract, default_model, memory, metrics, sources
from .batching import AdaptiveBatcher
from .errors import BadImage, ImageTooLarge, NoSuchVersion
from .imaging import (
    ImageOverLimit,
    ImageProblem,
    decode_cost,
    decode_opened,
    open_image,
    photo_decode_cost,
)
from .protocol import codec, outputs
from .protocol.codec import ImageBatch
from .runtime import loading
from .runtime.base import Runtime
from .settings import Settings
from .sources import ResolvedModel

logger = logging.getLogger(__name__)

# The V2 metadata's `platform`, in the protocol's `<project>_<format>` form. The spec's list has
# no Keras entry, and `tensorflow_savedmodel` would send tools looking for a SavedModel; the file
# served is TensorFlow's Keras format (`final_model.keras`, as the course saves it).
PLATFORM = "tensorflow_keras"


@dataclass(frozen=True)
class _Job:
    """A request on its way through preprocess -> predict -> postprocess."""

    request: InferRequest | None  # None for V1 and the course's /upload
    batch: ImageBatch
    values: np.ndarray | None = None


class CatsDogsOtherModel(kserve.Model):
    ready: bool  # kserve.Model's flag: the data plane answers readiness from it

    def __init__(self, settings: Settings):
        super().__init__(name=settings.model_name)
        self.settings = settings
        self.model_uri = settings.model_uri
        self.resolved: ResolvedModel | None = None
        self.limits = settings.limits
        self.max_images = settings.max_images
        self.max_batch_size = settings.max_batch_size  # 0: measured at load
        self._runtime: Runtime | None = None
        self.loaded: loading.Loaded | None = None
        self._load_lock = threading.Lock()
        # What requests hold at once (memory.py): sized once the model is loaded, unless set.
        self.budget = memory.MemoryBudget(settings.memory_budget_bytes or memory.UNSIZED_BUDGET)
        self._decoders = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        # As many model calls at once as the runtime runs in parallel (runtimes.py); set at load.
        self._inference = ThreadPoolExecutor(1, thread_name_prefix="infer")
        self.batcher = AdaptiveBatcher(
            self._run,
            self._inference,
            max_batch_size=settings.max_batch_size or 1,
            max_wait=settings.max_batch_wait,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def load(self) -> bool:
        """Fetch the model, load it and run one warm-up inference; only then is it ready.

        KServe's data plane calls `load()` itself when a request reaches a model that is not
        ready; while the first load is still running that must not start a second one.
        """
        if not self._load_lock.acquire(blocking=False):
            raise ModelNotReady(self.name, "the model is still loading")
        try:
            if self.ready:
                return True
            started = time.monotonic()
            uri = self.model_uri or str(default_model.PATH)
            resolved = sources.resolve(
                uri, self.settings.cache_dir, give_up_after=self.settings.fetch_timeout
            )
            loaded = loading.load(
                resolved.path,
                resolved.sha256,
                choice=self.settings.runtime,
                wanted=self.settings.precision,
                threads=self.settings.inference_threads,
                max_batch_size=self.max_batch_size,
                cache_dir=self.settings.cache_dir,
                calibration_dir=self.settings.calibration_dir,
                limits=self.limits,
                isolated=True,
            )
            runtime = loaded.runtime
            self._configure_batcher(loaded)
            self._size_budget()
            self._runtime, self.resolved, self.loaded = runtime, resolved, loaded
            self.ready = True
            self._publish(loaded, resolved, time.monotonic() - started)
            described = ", ".join(f"{k} {v}" for k, v in resolved.describe().items())
            cached = " (from the cache)" if resolved.from_cache else ""
            logger.info("model %s loaded and warmed up%s: %s", self.name, cached, described)
            if not self.model_uri:
                logger.warning("no model URI given: serving the %s", default_model.DESCRIPTION)
            return True
        finally:
            self._load_lock.release()

    def _publish(self, loaded: loading.Loaded, resolved: ResolvedModel, seconds: float) -> None:
        """The loaded model in `/metrics`: what it is, how long it took, and that it is ready."""
        runtime = loaded.runtime
        metrics.describe_model(
            model=self.name,
            version=self.version,
            uri=sources.redact(resolved.uri),
            sha256=resolved.sha256,
            location=sources.redact(resolved.location),
            runtime=runtime.name,
            precision=runtime.precision,
            max_batch_size=str(self.batcher.max_batch_size),
            decided="cached" if loaded.from_cache else "measured",
        )
        for verdict in loaded.decisions.verdicts:
            metrics.PRECISION_AGREEMENT.labels(verdict.precision).set(verdict.agreement)
            metrics.PRECISION_AGREEMENT_BOUND.labels(verdict.precision).set(verdict.agreement_bound)
        metrics.publish_baseline(loaded.decisions.baseline)
        metrics.LOAD_SECONDS.set(seconds)
        metrics.MODEL_READY.set(1)

    def _configure_batcher(self, loaded: loading.Loaded) -> None:
        """As many batches in flight as the runtime runs at once, each as large as pays
        (measured once, then kept with the load's other decisions)."""
        runtime = loaded.runtime
        if runtime.parallel > 1:
            self._inference.shutdown(wait=False)
            self._inference = ThreadPoolExecutor(runtime.parallel, thread_name_prefix="infer")
        measured = ""
        if not self.max_batch_size:
            measured = " (measured at an earlier start)" if loaded.from_cache else " (measured)"
        self.batcher.max_batch_size = loaded.decisions.max_batch_size
        self.batcher.executor, self.batcher.in_flight = self._inference, runtime.parallel
        logger.info(
            "batching: up to %d images per model call%s, %d call(s) at once, waiting %g ms",
            self.batcher.max_batch_size,
            measured,
            runtime.parallel,
            self.batcher.max_wait * 1000,
        )

    def _size_budget(self) -> None:
        """The memory budget, from what the container's limit leaves above the loaded model
        (unless set), and as many decoding threads as it holds decodes of the largest
        ordinary photo (a costlier image, a large WebP or RGBA PNG, waits for room)."""
        limit, resident = memory.memory_limit(), memory.resident_bytes()
        if not self.settings.memory_budget_bytes:
            self.budget.resize(memory.sized_budget(limit, resident))
        photo = photo_decode_cost(self.limits)
        threads = max(1, min(self.settings.decode_threads, self.budget.capacity // photo))
        if threads != self.settings.decode_threads:
            self._decoders.shutdown(wait=False)
            self._decoders = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        mib = 1024 * 1024
        logger.info(
            "memory budget: %d MiB for requests (limit %s, %d MiB resident after load); "
            "%d decoding thread(s), %d MiB for the largest photo",
            self.budget.capacity // mib,
            f"{limit // mib} MiB" if limit else "none",
            resident // mib,
            threads,
            photo // mib,
        )

    def stop(self) -> None:
        self._decoders.shutdown(wait=False, cancel_futures=True)
        self._inference.shutdown(wait=False, cancel_futures=True)

    @property
    def version(self) -> str:
        """The one version served: the first 12 hex digits of the file's SHA-256 (so a new file
        is a new version), or "" while none is loaded."""
        return self.resolved.sha256[:12] if self.resolved else ""

    def check_version(self, version: str | None) -> None:
        """A request may name the version served, or none; any other is not found. While the
        model loads, no version is known yet: a named one is "not ready" (503 / UNAVAILABLE)."""
        if not version:
            return
        if not self.ready:
            raise ModelNotReady(self.name)
        if version != self.version:
            raise NoSuchVersion(
                f"model {self.name} has no version '{version[:64]}'; it serves '{self.version}'"
            )

    def metadata(self) -> dict:
        """`GET /v2/models/<name>`: the tensors, and which model file is live."""
        parameters = self.resolved.describe() if self.resolved else {}
        if parameters and not self.model_uri:
            parameters["model"] = default_model.DESCRIPTION
        if parameters and self._runtime is not None and self.loaded is not None:
            parameters["runtime"] = self._runtime.name
            parameters["precision"] = self._runtime.precision
            for verdict in self.loaded.decisions.verdicts:
                name = verdict.precision
                parameters[f"{name}_agreement_with_fp32"] = f"{verdict.agreement:.4f}"
                # The guard's claim: at least this share, with guard.CONFIDENCE confidence.
                parameters[f"{name}_agreement_lower_bound"] = f"{verdict.agreement_bound:.4f}"
                parameters[f"{name}_guard_images"] = str(verdict.images)
                parameters[f"{name}_guard"] = "passed" if verdict.passed else verdict.reason
            parameters["max_batch_size"] = str(self.batcher.max_batch_size)
            parameters["parallel_model_calls"] = str(self.batcher.in_flight)
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": PLATFORM,
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
            "parameters": parameters,
        }

    def get_input_types(self) -> list[dict]:
        return contract.input_types()

    def get_output_types(self) -> list[dict]:
        return contract.output_types()

    # -- KServe's data plane hooks -------------------------------------------------------------

    def validate(self, payload):
        # KServe's default validation only knows dicts and InferRequests; ours checked already.
        return payload

    async def preprocess(self, payload, headers=None) -> _Job:
        if isinstance(payload, InferRequest):
            self.check_version(payload.model_version)
            outputs.wanted_outputs(payload)  # a bad output request fails before any decoding
            return _Job(payload, codec.batch_from_infer_request(payload, self.max_images))
        return _Job(None, codec.batch_from_v1(payload, self.max_images))

    async def predict(self, payload: _Job, headers=None) -> _Job:
        values = await self.classify(payload.batch)
        return _Job(payload.request, payload.batch, values)

    async def postprocess(self, result: _Job, headers=None):
        assert result.values is not None, "postprocess runs after predict"
        request = result.request
        if request is not None:
            response_id = request.id or str(uuid.uuid4())
            return outputs.build(request, result.values, self.name, self.version, response_id)
        return {"predictions": codec.prediction_rows(result.values)}

    # -- the work, off the event loop ----------------------------------------------------------

    async def classify(self, batch: ImageBatch) -> np.ndarray:
        """The model's output rows for a batch: decode in parallel, then the batcher."""
        if self._runtime is None:
            raise ModelNotReady(self.name)
        with metrics.INFERENCE_SECONDS.time():
            if batch.pixels is not None:
                return await self.batcher(batch.pixels)
            # The batch's pixels, taken before they are allocated: refused at once if they do
            # not fit, never an allocation past the container's limit.
            with self.budget.take(len(batch.images) * PIXEL_ROW_BYTES):
                pixels = await self._decode_all(batch)
                return await self.batcher(pixels)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        """One model call for the batcher; its answers counted in the model's metrics here,
        in the inference thread, off the event loop (about 30 us an image of a 16-image batch)."""
        assert self._runtime is not None, "the batcher runs only once the model is loaded"
        values = self._runtime(pixels)
        metrics.observe_answers(pixels, values)
        return values

    async def _decode_all(self, batch: ImageBatch) -> np.ndarray:
        """Decode every image in parallel, each straight into its row of the batch. The first
        image that fails fails the request at once: the decodes not started are dropped, and
        the request returns only once those running have finished writing into its rows (so
        its rows are never given back to the budget while a thread still fills them)."""
        loop = asyncio.get_running_loop()
        pixels = np.empty((len(batch.images), *contract.PIXELS_SHAPE), dtype=np.float32)
        deadline = time.monotonic() + memory.DECODE_PATIENCE_SECONDS  # for all its images
        futures = [
            loop.run_in_executor(
                self._decoders, self._decode_one, index, element, pixels[index], deadline
            )
            for index, element in enumerate(batch.images)
        ]
        try:
            await asyncio.gather(*futures)
        except BaseException:  # a bad image, the budget, or the caller gone (cancelled)
            for future in futures:
                future.cancel()  # those not started yet
            # Those running finish their image (each within its wait for the budget).
            await asyncio.shield(asyncio.gather(*futures, return_exceptions=True))
            for future in futures:  # report the first bad image by its index
                problem = None if future.cancelled() else future.exception()
                if problem is not None:
                    raise problem from None
            raise
        return pixels

    def _decode_one(
        self, index: int, element: codec.ImageData, out: np.ndarray, deadline: float
    ) -> None:
        """Decode one image once the budget holds what its decoding costs (known from its
        header): a decode waits for room, until the request's deadline, rather than allocate
        past the container's limit."""
        data = codec.image_bytes(index, element, self.limits.max_bytes)
        try:
            image = open_image(data, self.limits)
            cost = decode_cost(image)
            if cost > self.budget.capacity:
                raise ImageOverLimit(
                    f"decoding its {image.width}x{image.height} {image.format} {image.mode} "
                    f"pixels takes {cost} bytes, more than the server's memory budget of "
                    f"{self.budget.capacity}"
                )
            patience = max(0.0, deadline - time.monotonic())
            with self.budget.wait_for(cost, patience):
                decode_opened(image, out)
            metrics.INPUT_IMAGE_PIXELS.observe(image.width * image.height)
        except ImageOverLimit as exc:
            raise ImageTooLarge(index, str(exc)) from None
        except ImageProblem as exc:
            raise BadImage(index, str(exc)) from None


PIXEL_ROW_BYTES = int(np.prod(contract.PIXELS_SHAPE)) * 4  # one image as the model sees it
