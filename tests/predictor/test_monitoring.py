"""The model's answers summarised (predictor/monitoring.py) and counted on `/metrics`
(predictor/metrics.py): label as the answer's `prediction` decides it, top-1 score, brightness
as the model sees the image; the baseline's shares read at the same bounds (`le`) as the live
histograms, so that a query divides like by like."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from predictor import metrics, monitoring
from predictor.contract import CHANNEL_MEANS, LABELS, PIXELS_SHAPE, label_of
from predictor.imaging import ImageLimits, decode_image
from support.images import course_photo_paths

pytestmark = pytest.mark.unit


def images_of(*levels: float) -> np.ndarray:
    """Uniform images of each grey level (0-255), mean-subtracted as the model sees them."""
    grey = np.array(levels, dtype=np.float32)[:, None, None, None] * np.ones(PIXELS_SHAPE)
    return (grey - np.asarray(CHANNEL_MEANS, dtype=np.float32)).astype(np.float32)


def test_each_answer_is_its_label_its_top_score_and_its_brightness():
    values = np.array([[0.9, 0.2, 0.1], [0.1, 0.3, 0.2], [0.4, 0.4, 0.1]], dtype=np.float32)
    summary = monitoring.summarize(images_of(0, 128, 255), values)
    # ties to the first label, as the answer's `prediction` is decided
    assert [LABELS[i] for i in summary.labels] == [label_of(row) for row in values]
    assert summary.labels.tolist() == [0, 1, 0]
    assert np.allclose(summary.confidence, [0.9, 0.3, 0.4])
    assert np.allclose(summary.brightness, [0, 128, 255], atol=1e-3)


def test_brightness_read_on_a_sample_of_the_pixels_is_the_photos_mean():
    """Every fourth row and column: on the course photos, within 3 levels of the whole mean
    (the buckets are 16 to 32 levels wide)."""
    paths = course_photo_paths(85)
    pixels = np.stack([decode_image(path.read_bytes(), ImageLimits()) for path in paths])
    sampled = monitoring.summarize(pixels, np.ones((len(paths), 3), np.float32)).brightness
    whole = pixels.mean(axis=(1, 2, 3), dtype=np.float64) + float(np.mean(CHANNEL_MEANS))
    assert np.abs(sampled - whole).max() < 3
    assert np.ptp(whole) > 30  # photos of different brightness, not one level


def test_shares_are_cumulative_as_prometheus_buckets_are():
    scores = np.array([0.2, 0.6, 0.6, 0.95, 1.0])
    assert monitoring.shares_at_or_under(scores, (0.5, 0.6, 0.99)) == (0.2, 0.6, 0.8)
    assert monitoring.shares_at_or_under(np.array([]), (0.5,)) == (0.0,)


def test_a_baseline_holds_the_mix_and_the_shares_under_each_bound():
    values = np.array(
        [[0.9, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.55, 0.2], [0.1, 0.2, 0.97]], dtype=np.float32
    )
    pixels = np.repeat(images_of(10, 100, 100, 250), 5, axis=0)  # 20: as few as a baseline has
    baseline = monitoring.Baseline.of(monitoring.summarize(pixels, np.repeat(values, 5, axis=0)))
    assert baseline.images == 20
    assert baseline.label_shares == (0.5, 0.25, 0.25)
    shares = dict(zip(monitoring.CONFIDENCE_BUCKETS, baseline.confidence_shares, strict=True))
    assert shares[0.5] == 0 and shares[0.6] == 0.25 and shares[0.9] == 0.75 and shares[0.99] == 1
    light = dict(zip(monitoring.BRIGHTNESS_BUCKETS, baseline.brightness_shares, strict=True))
    assert light[16] == 0.25 and light[96] == 0.25 and light[128] == 0.75 and light[224] == 0.75
    assert monitoring.Baseline.from_json(baseline.to_json()) == baseline
    assert baseline.describe() == (
        "20 reference photos: predicted Cat 50%, Dog 25%, Other 25%; top-1 score <= 0.6: 25%"
    )


def sample(name: str, **labels: str) -> float:
    """The sample's value; a series that does not exist fails (it is not a 0)."""
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None, f"no series {name}{labels}"
    return value


def test_answers_are_counted_by_label_with_their_score_and_brightness():
    before = {
        label: sample("predictor_prediction_confidence_count", label=label) for label in LABELS
    }
    low = sample("predictor_prediction_confidence_bucket", label="Other", le="0.6")
    dark = sample("predictor_input_brightness_bucket", le="32.0")
    values = np.array([[0.1, 0.2, 0.5], [0.1, 0.2, 0.9], [0.7, 0.2, 0.1]], dtype=np.float32)
    metrics.observe_answers(images_of(20, 200, 200), values)
    after = {
        label: sample("predictor_prediction_confidence_count", label=label) for label in LABELS
    }
    assert {label: after[label] - before[label] for label in LABELS} == {
        "Cat": 1,
        "Dog": 0,
        "Other": 2,
    }
    assert sample("predictor_prediction_confidence_bucket", label="Other", le="0.6") - low == 1
    assert sample("predictor_input_brightness_bucket", le="32.0") - dark == 1


def test_the_baseline_is_published_at_the_same_bounds_as_the_live_buckets():
    values = np.array([[0.9, 0.1, 0.1], [0.1, 0.55, 0.2]], dtype=np.float32)
    baseline = monitoring.Baseline.of(monitoring.summarize(images_of(10, 200), values))
    metrics.publish_baseline(baseline)
    assert sample("predictor_baseline_images") == 2
    assert sample("predictor_baseline_prediction_ratio", label="Dog") == 0.5
    assert sample("predictor_baseline_prediction_ratio", label="Other") == 0
    metrics.observe_answers(images_of(10), values[:1])
    # every live bucket has its baseline, by the same `le` text
    live = {
        s.labels["le"]
        for m in REGISTRY.collect()
        if m.name == "predictor_prediction_confidence"
        for s in m.samples
        if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    }
    assert live == {
        s.labels["le"]
        for m in REGISTRY.collect()
        if m.name == "predictor_baseline_confidence_ratio"
        for s in m.samples
    }
    assert sample("predictor_baseline_confidence_ratio", le="0.6") == 0.5
    assert sample("predictor_baseline_brightness_ratio", le="16.0") == 0.5
    metrics.publish_baseline(None)  # a load without one: no shares left from an earlier one
    assert sample("predictor_baseline_images") == 0
    assert (
        REGISTRY.get_sample_value("predictor_baseline_prediction_ratio", {"label": "Dog"}) is None
    )
