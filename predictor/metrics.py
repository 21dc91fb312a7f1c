"""The predictor's own Prometheus metrics, beside KServe's (`request_preprocess_seconds`,
`request_predict_seconds`, `request_postprocess_seconds` by model), on its `/metrics`; the
proxy serves that page to monitoring on its admin port (`/metrics/predictor`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

# A lone demo-model image takes ~7 ms, a VGG16 batch of 16 several seconds.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

BATCH_SIZE = Histogram(
    "predictor_model_batch_size",
    "Images per model call, requests coalesced by the adaptive batcher.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
MODEL_CALL_SECONDS = Histogram(
    "predictor_model_call_seconds",
    "Seconds one model call (one batch's inference) takes in the runtime.",
    buckets=SECONDS_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "predictor_inference_seconds",
    "Seconds from a request's images to its model outputs, whatever door it came through: "
    "decoding, the batcher's queue and the model call.",
    buckets=SECONDS_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "predictor_batch_queue_seconds",
    "Seconds a request's images waited in the batcher's queue for their model call to start.",
    buckets=SECONDS_BUCKETS,
)
QUEUE_IMAGES = Gauge(
    "predictor_batch_queue_images", "Images decoded and waiting for a model call (queue depth)."
)
CALLS_IN_FLIGHT = Gauge("predictor_model_calls_in_flight", "Model calls running now.")
MODEL_READY = Gauge(
    "predictor_model_ready", "1 once the model is loaded and warmed up (the ready probe's answer)."
)
LOAD_SECONDS = Gauge(
    "predictor_model_load_seconds",
    "Seconds the last model load took: fetch, conversion, runtime and precision choice, "
    "warm-up (or, warm, reading the compiled-model cache).",
)
PRECISION_AGREEMENT = Gauge(
    "predictor_precision_agreement_ratio",
    "Share of the held-out calibration photos on which a reduced precision's top-1 agreed with "
    "FP32 at load (the accuracy guard judges its lower bound, "
    "predictor_precision_agreement_lower_bound).",
    ["precision"],
)
PRECISION_AGREEMENT_BOUND = Gauge(
    "predictor_precision_agreement_lower_bound",
    "One-sided 95% exact (Clopper-Pearson) lower bound on that share: the guard serves a "
    "reduced precision only when it is 0.95 or more (and its accuracy is not lower than FP32's).",
    ["precision"],
)
BUDGET_BYTES = Gauge(
    "predictor_memory_budget_bytes",
    "Bytes requests may hold at once: bodies, gRPC messages, parsed JSON tensors, decoded pixels "
    "and images being decoded (MEMORY_BUDGET_BYTES, or sized from the memory limit at load).",
)
BUDGET_HELD = Gauge(
    "predictor_memory_budget_held_bytes", "Bytes of the memory budget held by requests now."
)
BUDGET_REFUSALS = Counter(
    "predictor_memory_budget_refusals_total",
    "Requests refused because what they needed did not fit in the memory budget (429 with "
    "Retry-After / RESOURCE_EXHAUSTED).",
)
MODEL = Info(
    "predictor_model",
    "The model served (value 1): its name, version, URI (credentials redacted), SHA-256 of the "
    "file, where it came from, and the runtime serving it.",
)
# Label values are operator-facing text, not for a client's data; a URI is cut to this.
INFO_MAX_CHARS = 200


def describe_model(**labels: str) -> None:
    MODEL.info({name: str(value)[:INFO_MAX_CHARS] for name, value in labels.items()})
