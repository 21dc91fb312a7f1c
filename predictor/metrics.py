"""The predictor's own Prometheus metrics, beside KServe's (`request_preprocess_seconds`,
`request_predict_seconds`, `request_postprocess_seconds` by model), on its `/metrics`; the
proxy serves that page to monitoring on its admin port (`/metrics/predictor`)."""

from __future__ import annotations

import logging

import numpy as np
from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.utils import floatToGoString

from .contract import LABELS
from .monitoring import (
    BRIGHTNESS_BUCKETS,
    CONFIDENCE_BUCKETS,
    IMAGE_PIXELS_BUCKETS,
    Baseline,
    summarize,
)

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
logger = logging.getLogger(__name__)

# Label values are operator-facing text, not for a client's data; a URI is cut to this.
INFO_MAX_CHARS = 200


def describe_model(**labels: str) -> None:
    MODEL.info({name: str(value)[:INFO_MAX_CHARS] for name, value in labels.items()})


# -- the model's answers (monitoring.py), and their baseline --------------------------------------

PREDICTION_CONFIDENCE = Histogram(
    "predictor_prediction_confidence",
    "Top-1 score (sigmoid output) of each image's answer, by the label predicted: its _count "
    "is the predictions by label, its buckets how sure the model was.",
    ["label"],
    buckets=CONFIDENCE_BUCKETS,
)
INPUT_BRIGHTNESS = Histogram(
    "predictor_input_brightness",
    "Mean brightness (0-255) of each image as the model sees it, after the resize.",
    buckets=BRIGHTNESS_BUCKETS,
)
INPUT_IMAGE_PIXELS = Histogram(
    "predictor_input_image_pixels",
    "Width x height of each image decoded from a file, before the resize to 224x224 (images "
    "sent as pixels are not counted).",
    buckets=IMAGE_PIXELS_BUCKETS,
)
BASELINE_IMAGES = Gauge(
    "predictor_baseline_images",
    "Reference photos the baseline was measured on at the cold load (0: no baseline).",
)
BASELINE_LABEL_RATIO = Gauge(
    "predictor_baseline_prediction_ratio",
    "Share of the reference photos predicted as each label by the model served.",
    ["label"],
)
BASELINE_CONFIDENCE_RATIO = Gauge(
    "predictor_baseline_confidence_ratio",
    "Share of the reference photos whose top-1 score is at or under `le`: the baseline of "
    "predictor_prediction_confidence_bucket / _count.",
    ["le"],
)
BASELINE_BRIGHTNESS_RATIO = Gauge(
    "predictor_baseline_brightness_ratio",
    "Share of the reference photos whose mean brightness is at or under `le`: the baseline of "
    "predictor_input_brightness_bucket / _count.",
    ["le"],
)
# Resolved once: a child per label, so that each answer costs one observe, not a lookup.
_CONFIDENCE_BY_LABEL = tuple(PREDICTION_CONFIDENCE.labels(label) for label in LABELS)


def observe_answers(pixels: np.ndarray, values: np.ndarray) -> None:
    """A model call's answers in the histograms: label, score and brightness of each image.
    Counting never fails the call it counts: an error here is logged once and the answers go
    out uncounted (the NoPredictions alert shows a model whose answers stop being counted)."""
    try:
        _observe(pixels, values)
    except Exception:
        global _COUNTING_FAILED
        if not _COUNTING_FAILED:
            _COUNTING_FAILED = True
            logger.exception("monitoring: the model's answers could not be counted")


_COUNTING_FAILED = False


def _observe(pixels: np.ndarray, values: np.ndarray) -> None:
    summary = summarize(pixels, values)
    for label, score, light in zip(
        summary.labels.tolist(),
        summary.confidence.tolist(),
        summary.brightness.tolist(),
        strict=True,
    ):
        _CONFIDENCE_BY_LABEL[label].observe(score)
        INPUT_BRIGHTNESS.observe(light)


def publish_baseline(baseline: Baseline | None) -> None:
    """The baseline's shares as gauges (none at all without a baseline: the drift alerts then
    have nothing to compare with and stay silent, and predictor_baseline_images says 0)."""
    for gauge in (BASELINE_LABEL_RATIO, BASELINE_CONFIDENCE_RATIO, BASELINE_BRIGHTNESS_RATIO):
        gauge.clear()
    BASELINE_IMAGES.set(baseline.images if baseline else 0)
    if baseline is None:
        return
    for label, share in zip(LABELS, baseline.label_shares, strict=True):
        BASELINE_LABEL_RATIO.labels(label).set(share)
    for bound, share in zip(CONFIDENCE_BUCKETS, baseline.confidence_shares, strict=True):
        BASELINE_CONFIDENCE_RATIO.labels(floatToGoString(bound)).set(share)
    for bound, share in zip(BRIGHTNESS_BUCKETS, baseline.brightness_shares, strict=True):
        BASELINE_BRIGHTNESS_RATIO.labels(floatToGoString(bound)).set(share)
