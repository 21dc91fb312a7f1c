"""How the model is doing, beside how the server is: what it predicts, how sure it is, what it
is shown; and the same measured once on reference photos (the baseline) so that alerts compare
live traffic with what the model did on photos like the ones it was made for, without numbers
set by hand.

Each answer is summarised by three numbers: the label predicted (argmax, as the answer's
`prediction`), its score (the top-1 sigmoid output: how sure the model is) and the image's
mean brightness as the model sees it (0-255, before the course's mean subtraction). Live
answers go to histograms on `/metrics` (metrics.py); the baseline is the same three summaries
over the reference photos, kept as shares: the share of each label predicted, and the share of
scores and brightnesses at or under each histogram bucket's bound, so that a query reads a live
share and its baseline at the same bound (`le`).

The baseline is measured at the cold load on the served runtime (deciding.py), over the
calibration folder's photos (`CALIBRATION_DIR`: the photos the model is meant for), and kept
with the load's other decisions in the compiled-model cache: a warm start publishes it without
measuring again. Pure functions here; metrics.py and model.py publish.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .contract import CHANNEL_MEANS, LABELS

# Top-1 scores: sigmoid outputs, so an image of none of the three labels can score low on all.
# 0.6 is the alerts' low-confidence bound (the PrometheusRule reads the share at le="0.6");
# 0.999 tells a sure model's answers apart (the demo model scores its photos above 0.99).
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
# Mean brightness 0-255: night shots and blank frames low, overexposed or white ones high.
BRIGHTNESS_BUCKETS: tuple[float, ...] = (16, 32, 64, 96, 128, 160, 192, 224)
# Decoded width x height before the resize to 224x224: thumbnails to 40-megapixel photos.
IMAGE_PIXELS_BUCKETS: tuple[float, ...] = (
    50_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    12_000_000,
    40_000_000,
)
# Fewer reference photos than this make a baseline whose shares are mostly sampling noise: no
# baseline is published then (the drift alerts stay silent and the load says why).
MIN_BASELINE_IMAGES = 20
# Brightness is read on every fourth row and column: 1/16 of the pixels, within 3 levels of the
# whole image's mean on the course photos (2.8 at most; the buckets are 16-32 levels wide), and
# 0.26 ms instead of 1.8 ms for a batch of 16 (measured on this project's 2-core machine).
_STRIDE = 4
_MEAN_OFFSET = float(np.mean(CHANNEL_MEANS))


@dataclass(frozen=True)
class Summary:
    """Each image's label index, top-1 score and mean brightness, in request order."""

    labels: np.ndarray  # int [N]: index into LABELS
    confidence: np.ndarray  # float [N]: the top-1 sigmoid output
    brightness: np.ndarray  # float [N]: mean of the image's 0-255 values


def summarize(pixels: np.ndarray, values: np.ndarray) -> Summary:
    """The summaries of a batch: `pixels` as the model saw them (mean-subtracted float32
    [N, 224, 224, 3]) and its output rows `values` [N, 3]. Ties go to the first label, as
    contract.label_of decides the answer's `prediction`."""
    labels = np.argmax(values, axis=1)
    # A NaN score (a model that overflowed on extreme raw pixels) counts as no confidence at
    # all, never as an answer a histogram drops; raw pixels may be any finite value, so the
    # brightness is held to the 0-255 a photo has.
    confidence = np.nan_to_num(values[np.arange(len(values)), labels].astype(np.float64), nan=0.0)
    sampled = pixels[:, ::_STRIDE, ::_STRIDE, :]
    brightness = sampled.mean(axis=(1, 2, 3), dtype=np.float64) + _MEAN_OFFSET
    return Summary(labels, np.clip(confidence, 0.0, 1.0), np.clip(brightness, 0.0, 255.0))


def shares_at_or_under(values: np.ndarray, bounds: tuple[float, ...]) -> tuple[float, ...]:
    """The share of `values` at or under each bound: a Prometheus histogram's cumulative
    buckets (`le`), divided by its count."""
    if len(values) == 0:
        return tuple(0.0 for _ in bounds)
    return tuple(float(np.mean(values <= bound)) for bound in bounds)


class InvalidBaseline(ValueError):
    """JSON that is not a baseline `Baseline.to_json` wrote."""


@dataclass(frozen=True)
class Baseline:
    """What the model did on the reference photos: shares, each between 0 and 1."""

    images: int
    label_shares: tuple[float, ...]  # one per LABELS: how often each was predicted
    confidence_shares: tuple[float, ...]  # one per CONFIDENCE_BUCKETS: top-1 score <= bound
    brightness_shares: tuple[float, ...]  # one per BRIGHTNESS_BUCKETS: brightness <= bound

    @classmethod
    def of(cls, summary: Summary) -> Baseline:
        counts = np.bincount(summary.labels, minlength=len(LABELS))[: len(LABELS)]
        total = max(1, len(summary.labels))
        return cls(
            images=len(summary.labels),
            label_shares=tuple(float(count) / total for count in counts),
            confidence_shares=shares_at_or_under(summary.confidence, CONFIDENCE_BUCKETS),
            brightness_shares=shares_at_or_under(summary.brightness, BRIGHTNESS_BUCKETS),
        )

    def describe(self) -> str:
        mix = ", ".join(
            f"{label} {share:.0%}" for label, share in zip(LABELS, self.label_shares, strict=True)
        )
        low = self.confidence_shares[CONFIDENCE_BUCKETS.index(0.6)]
        return f"{self.images} reference photos: predicted {mix}; top-1 score <= 0.6: {low:.0%}"

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "label_shares": list(self.label_shares),
            "confidence_shares": list(self.confidence_shares),
            "brightness_shares": list(self.brightness_shares),
        }

    @classmethod
    def from_json(cls, data: object) -> Baseline:
        """The baseline `to_json` wrote, or InvalidBaseline (a cache entry someone edited)."""
        if not isinstance(data, dict):
            raise InvalidBaseline("the baseline is not an object")
        images = data.get("images")
        if not isinstance(images, int) or isinstance(images, bool) or images < MIN_BASELINE_IMAGES:
            raise InvalidBaseline("the baseline has no image count")
        baseline = cls(
            images=images,
            label_shares=_shares(data.get("label_shares"), len(LABELS), images),
            confidence_shares=_shares(
                data.get("confidence_shares"), len(CONFIDENCE_BUCKETS), images
            ),
            brightness_shares=_shares(
                data.get("brightness_shares"), len(BRIGHTNESS_BUCKETS), images
            ),
        )
        # What `of` could have measured, nothing else: a mix that sums to one (a mix of zeros
        # would set the drift alert off forever, one of ones hide any drift), and cumulative
        # shares that never fall.
        if abs(sum(baseline.label_shares) - 1) > 1e-6:
            raise InvalidBaseline("the baseline's label shares do not sum to 1")
        for cumulative in (baseline.confidence_shares, baseline.brightness_shares):
            if any(later < earlier for earlier, later in itertools.pairwise(cumulative)):
                raise InvalidBaseline("the baseline's cumulative shares fall")
        return baseline


def _shares(data: object, length: int, images: int) -> tuple[float, ...]:
    """`length` shares, each a count of `images` divided by `images` (as `of` computes them)."""
    if (
        not isinstance(data, list)
        or len(data) != length
        or not all(isinstance(v, float | int) and not isinstance(v, bool) for v in data)
        or not all(0.0 <= v <= 1.0 for v in data)
        or not all(abs(v * images - round(v * images)) < 1e-6 for v in data)
    ):
        raise InvalidBaseline("the baseline's shares are malformed")
    return tuple(float(v) for v in data)
