"""What a load decided, as one record (predictor/runtime/decisions.py): `to_json` is what
decisions.json has always held, `from_json` reads it back and refuses, in one line, anything
`to_json` would not write (the cache then deletes the entry and loads cold)."""

from __future__ import annotations

import json

import pytest

from predictor.precision.guard import Verdict
from predictor.runtime.decisions import Decisions, InvalidDecisions

pytestmark = pytest.mark.unit

INT8 = Verdict("int8", True, 1.0, 0.9333, 0.9333, 15, "")
BF16 = Verdict("bf16", False, 0.9333, None, None, 15, "top-1 agreement 93.3% < 99%")
DECIDED = Decisions(runtime="openvino", precision="int8", max_batch_size=4, verdicts=(INT8, BF16))

# decisions.json as the load wrote it before `Decisions` (a dict built in loading.py): the
# format is unchanged, so entries written then still read.
WRITTEN_BEFORE = {
    "files": {"model.bin": "ab" * 32, "model.xml": "cd" * 32},
    "max_batch_size": 4,
    "precision": "int8",
    "runtime": "openvino",
    "verdicts": [
        {
            "accuracy": 0.9333,
            "agreement": 1.0,
            "fp32_accuracy": 0.9333,
            "images": 15,
            "passed": True,
            "precision": "int8",
            "reason": "",
        },
        {
            "accuracy": None,
            "agreement": 0.9333,
            "fp32_accuracy": None,
            "images": 15,
            "passed": False,
            "precision": "bf16",
            "reason": "top-1 agreement 93.3% < 99%",
        },
    ],
}


def test_decisions_survive_json_as_they_are():
    assert Decisions.from_json(json.loads(json.dumps(DECIDED.to_json()))) == DECIDED
    fp32 = Decisions(runtime="tensorflow", precision="fp32", max_batch_size=1)
    assert Decisions.from_json(json.loads(json.dumps(fp32.to_json()))) == fp32


def test_an_entry_written_before_the_record_reads_as_the_same_decisions():
    assert Decisions.from_json(WRITTEN_BEFORE) == DECIDED
    assert DECIDED.to_json() == {k: v for k, v in WRITTEN_BEFORE.items() if k != "files"}


def verdict_with(**changes) -> dict:
    return {**WRITTEN_BEFORE, "verdicts": [{**WRITTEN_BEFORE["verdicts"][0], **changes}]}


def without(name: str) -> dict:
    return {k: v for k, v in WRITTEN_BEFORE.items() if k != name}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([1], "decisions.json is not an object"),
        (None, "decisions.json is not an object"),
        (without("runtime"), "no runtime"),
        ({**WRITTEN_BEFORE, "runtime": "auto"}, "no runtime"),
        ({**WRITTEN_BEFORE, "runtime": ["openvino"]}, "no runtime"),
        ({**WRITTEN_BEFORE, "precision": "auto"}, "no precision"),
        ({**WRITTEN_BEFORE, "precision": None}, "no precision"),
        (without("max_batch_size"), "no batch size"),
        ({**WRITTEN_BEFORE, "max_batch_size": True}, "no batch size"),
        ({**WRITTEN_BEFORE, "max_batch_size": 4.0}, "no batch size"),
        ({**WRITTEN_BEFORE, "max_batch_size": 1025}, "no batch size"),
        (without("verdicts"), "malformed verdicts"),
        ({**WRITTEN_BEFORE, "verdicts": {}}, "malformed verdicts"),
        ({**WRITTEN_BEFORE, "verdicts": ["int8"]}, "malformed verdicts"),
        (verdict_with(precision="fp32"), "malformed verdicts"),
        (verdict_with(passed=1), "malformed verdicts"),
        (verdict_with(agreement=1), "malformed verdicts"),
        (verdict_with(accuracy="0.9"), "malformed verdicts"),
        (verdict_with(images=True), "malformed verdicts"),
        (verdict_with(reason=None), "malformed verdicts"),
    ],
)
def test_anything_to_json_never_writes_is_refused_in_one_line(data, why):
    with pytest.raises(InvalidDecisions) as refused:
        Decisions.from_json(data)
    assert str(refused.value) == why
    assert isinstance(refused.value, ValueError)  # what the cache turns into "deleted"
