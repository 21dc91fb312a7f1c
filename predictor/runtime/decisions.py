"""What a load decided: the runtime, the precision, the guard's verdicts, the batch size, and
the baseline of the model's answers on the reference photos (monitoring.py).

A cold load decides them (loading.py's `decide`), the compiled-model cache keeps them as
`decisions.json` (compiled_cache.py), a warm load reads them back, and the server configures
itself from them (model.py: the batcher's size, the metadata, the metrics). `Decisions` is that
one record, in one shape everywhere: attributes, never string keys.

`to_json` is what `decisions.json` holds (the cache adds each file's digest beside it);
`from_json` reads it back and refuses anything `to_json` would not have written, with one line
saying what (`InvalidDecisions`): the cache then deletes the entry, warns once and loads cold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..monitoring import Baseline, InvalidBaseline
from ..precision.guard import REDUCED, Verdict

RUNTIMES = ("openvino", "tensorflow")  # what a load serves with (`auto` is a choice, not one)
PRECISIONS = ("fp32", *REDUCED)  # what a load serves in (`auto` likewise)
MOST_BATCH = 1024  # far above any measured batch (best_batch_size stops at 32)


class InvalidDecisions(ValueError):
    """JSON that is not decisions `to_json` wrote: the message says what is wrong."""


@dataclass(frozen=True)
class Decisions:
    runtime: str  # one of RUNTIMES
    precision: str  # one of PRECISIONS
    max_batch_size: int  # the batcher's largest batch: measured at the cold load, or as set
    verdicts: tuple[Verdict, ...] = ()  # the guard's, one per reduced precision tried
    baseline: Baseline | None = None  # None: no usable reference photos

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "precision": self.precision,
            "verdicts": [verdict.as_dict() for verdict in self.verdicts],
            "max_batch_size": self.max_batch_size,
            "baseline": self.baseline.to_json() if self.baseline else None,
        }

    @classmethod
    def from_json(cls, data: object) -> Decisions:
        """The decisions `to_json` gave, or InvalidDecisions. Keys it does not know (the
        cache's file digests) are left to whoever wrote them."""
        if not isinstance(data, dict):
            raise InvalidDecisions("decisions.json is not an object")
        runtime, precision = data.get("runtime"), data.get("precision")
        if runtime not in RUNTIMES:
            raise InvalidDecisions("no runtime")
        if precision not in PRECISIONS:
            raise InvalidDecisions("no precision")
        size = data.get("max_batch_size")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MOST_BATCH:
            raise InvalidDecisions("no batch size")
        verdicts = data.get("verdicts")
        if not isinstance(verdicts, list):
            raise InvalidDecisions("malformed verdicts")
        if "baseline" not in data:
            raise InvalidDecisions("no baseline")
        try:
            baseline = None if data["baseline"] is None else Baseline.from_json(data["baseline"])
        except InvalidBaseline as exc:
            raise InvalidDecisions(str(exc)) from None
        return cls(runtime, precision, size, tuple(_verdict(v) for v in verdicts), baseline)


def _verdict(data: object) -> Verdict:
    """One verdict as `Verdict.as_dict` wrote it, or InvalidDecisions."""
    images = data.get("images") if isinstance(data, dict) else None
    if not (
        isinstance(data, dict)
        and data.get("precision") in REDUCED
        and isinstance(data.get("passed"), bool)
        and isinstance(data.get("agreement"), float)
        and isinstance(data.get("agreement_bound"), float)
        and all(isinstance(data.get(name), float | None) for name in ("accuracy", "fp32_accuracy"))
        and isinstance(images, int)
        and not isinstance(images, bool)
        and isinstance(data.get("reason"), str)
    ):
        raise InvalidDecisions("malformed verdicts")
    return Verdict(
        precision=data["precision"],
        passed=data["passed"],
        agreement=data["agreement"],
        agreement_bound=data["agreement_bound"],
        accuracy=data.get("accuracy"),
        fp32_accuracy=data.get("fp32_accuracy"),
        images=images,
        reason=data["reason"],
    )
