"""What a load decided, as one record (predictor/runtime/decisions.py): `to_json` is what
decisions.json has always held, `from_json` reads it back and refuses, in one line, anything
`to_json` would not write (the cache then deletes the entry and loads cold), an entry written
before the guard stated its bound included."""

from __future__ import annotations

import json

import pytest

from predictor.monitoring import Baseline
from predictor.precision.guard import Verdict
from predictor.runtime.decisions import Decisions, InvalidDecisions

pytestmark = pytest.mark.unit

INT8 = Verdict("int8", True, 1.0, 0.9539, 0.9333, 0.9333, 56, "")
BF16 = Verdict("bf16", False, 0.9821, 0.9238, None, None, 56, "top-1 agreement 98.2% (55 of 56)")
# Shares as `Baseline.of` computes them: counts of the 85 photos, divided by 85.
LABEL_SHARES = [30 / 85, 33 / 85, 22 / 85]
CONFIDENCE_SHARES = [0.0, 0.0, 0.0, 1 / 85, 2 / 85, 3 / 85, 5 / 85, 7 / 85, 25 / 85, 43 / 85]
BRIGHTNESS_SHARES = [0.0, 0.0, 1 / 85, 15 / 85, 44 / 85, 74 / 85, 84 / 85, 1.0]
BASELINE = Baseline(
    images=85,
    label_shares=tuple(LABEL_SHARES),
    confidence_shares=tuple(CONFIDENCE_SHARES),
    brightness_shares=tuple(BRIGHTNESS_SHARES),
)
DECIDED = Decisions(
    runtime="openvino",
    precision="int8",
    max_batch_size=4,
    verdicts=(INT8, BF16),
    baseline=BASELINE,
)

# decisions.json as the load writes it (a dict built in loading.py before `Decisions`, the same
# format then, with the guard's bound since).
WRITTEN = {
    "files": {"model.bin": "ab" * 32, "model.xml": "cd" * 32},
    "max_batch_size": 4,
    "baseline": {
        "images": 85,
        "label_shares": LABEL_SHARES,
        "confidence_shares": CONFIDENCE_SHARES,
        "brightness_shares": BRIGHTNESS_SHARES,
    },
    "precision": "int8",
    "runtime": "openvino",
    "verdicts": [
        {
            "accuracy": 0.9333,
            "agreement": 1.0,
            "agreement_bound": 0.9539,
            "fp32_accuracy": 0.9333,
            "images": 56,
            "passed": True,
            "precision": "int8",
            "reason": "",
        },
        {
            "accuracy": None,
            "agreement": 0.9821,
            "agreement_bound": 0.9238,
            "fp32_accuracy": None,
            "images": 56,
            "passed": False,
            "precision": "bf16",
            "reason": "top-1 agreement 98.2% (55 of 56)",
        },
    ],
}


def test_decisions_survive_json_as_they_are():
    assert Decisions.from_json(json.loads(json.dumps(DECIDED.to_json()))) == DECIDED
    fp32 = Decisions(runtime="tensorflow", precision="fp32", max_batch_size=1)  # no baseline
    assert Decisions.from_json(json.loads(json.dumps(fp32.to_json()))) == fp32


def test_an_entry_as_the_load_writes_it_reads_as_the_same_decisions():
    assert Decisions.from_json(WRITTEN) == DECIDED
    assert DECIDED.to_json() == {k: v for k, v in WRITTEN.items() if k != "files"}


def test_a_verdict_written_before_the_bound_is_refused_not_read_as_passing():
    """Entries of older images: their key differs (the deciding code changed), but one that
    came back anyway is loaded cold, never served on a guard that claimed no bound."""
    old = {k: v for k, v in WRITTEN["verdicts"][0].items() if k != "agreement_bound"}
    with pytest.raises(InvalidDecisions, match="malformed verdicts"):
        Decisions.from_json({**WRITTEN, "verdicts": [old]})


NOT_ONE = "the baseline's label shares do not sum to 1"


def baseline_with(**changes) -> dict:
    return {**WRITTEN, "baseline": {**WRITTEN["baseline"], **changes}}


def verdict_with(**changes) -> dict:
    return {**WRITTEN, "verdicts": [{**WRITTEN["verdicts"][0], **changes}]}


def without(name: str) -> dict:
    return {k: v for k, v in WRITTEN.items() if k != name}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([1], "decisions.json is not an object"),
        (None, "decisions.json is not an object"),
        (without("runtime"), "no runtime"),
        ({**WRITTEN, "runtime": "auto"}, "no runtime"),
        ({**WRITTEN, "runtime": ["openvino"]}, "no runtime"),
        ({**WRITTEN, "precision": "auto"}, "no precision"),
        ({**WRITTEN, "precision": None}, "no precision"),
        (without("max_batch_size"), "no batch size"),
        ({**WRITTEN, "max_batch_size": True}, "no batch size"),
        ({**WRITTEN, "max_batch_size": 4.0}, "no batch size"),
        ({**WRITTEN, "max_batch_size": 1025}, "no batch size"),
        (without("verdicts"), "malformed verdicts"),
        ({**WRITTEN, "verdicts": {}}, "malformed verdicts"),
        ({**WRITTEN, "verdicts": ["int8"]}, "malformed verdicts"),
        (verdict_with(precision="fp32"), "malformed verdicts"),
        (verdict_with(passed=1), "malformed verdicts"),
        (verdict_with(agreement=1), "malformed verdicts"),
        (verdict_with(agreement_bound=None), "malformed verdicts"),
        (verdict_with(accuracy="0.9"), "malformed verdicts"),
        (verdict_with(images=True), "malformed verdicts"),
        (verdict_with(reason=None), "malformed verdicts"),
        (without("baseline"), "no baseline"),
        ({**WRITTEN, "baseline": []}, "the baseline is not an object"),
        (baseline_with(images=0), "the baseline has no image count"),
        (baseline_with(images=True), "the baseline has no image count"),
        (baseline_with(images=19), "the baseline has no image count"),  # too few to be one
        (baseline_with(label_shares=[0.5, 0.5]), "the baseline's shares are malformed"),
        (baseline_with(label_shares=[0.5, 0.5, 1.5]), "the baseline's shares are malformed"),
        (
            baseline_with(label_shares=[0.0, 0.0, 0.0]),
            "the baseline's label shares do not sum to 1",
        ),
        (
            baseline_with(label_shares=[1.0, 1.0, 1.0]),
            "the baseline's label shares do not sum to 1",
        ),
        (baseline_with(label_shares=[0.3, 0.3, 0.4]), "the baseline's shares are malformed"),
        (
            baseline_with(brightness_shares=[*BRIGHTNESS_SHARES[:-1], 0.0]),
            "the baseline's cumulative shares fall",
        ),
        (
            baseline_with(label_shares=[0.5, 0.5, float("nan")]),
            "the baseline's shares are malformed",
        ),
        (baseline_with(confidence_shares=None), "the baseline's shares are malformed"),
        (baseline_with(brightness_shares=[True] * 8), "the baseline's shares are malformed"),
    ],
)
def test_anything_to_json_never_writes_is_refused_in_one_line(data, why):
    with pytest.raises(InvalidDecisions) as refused:
        Decisions.from_json(data)
    assert str(refused.value) == why
    assert isinstance(refused.value, ValueError)  # what the cache turns into "deleted"
