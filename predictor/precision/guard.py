"""Which arithmetic the model runs in, and the guard a reduced precision must pass at load.

- `fp32` (the default): Keras's values, to 1e-4 (the runtime check in runtime/runtimes.py).
- `int8`: the OpenVINO model quantized after training by NNCF, calibrated on a folder of
  photos (calibration.py). About 2x (no VNNI) to 4x (AVX512-VNNI / AMX) FP32's images/s.
- `bf16`: OpenVINO computing in bfloat16 (`INFERENCE_PRECISION_HINT=bf16`), on CPUs with
  AVX512_BF16 or AMX only: elsewhere OpenVINO would emulate it slower than FP32.
- `auto`: the fastest of those that pass the guard, FP32 when none does.

The guard (`judge`): on held-out photos (never used for calibration) the reduced model's top-1
must agree with FP32's, and the evidence must be enough: the one-sided 95 % exact
(Clopper-Pearson) lower bound on the share of photos it agrees on must reach `AGREEMENT_MIN`
(95 %). Exact, because the usual approximations (Wald, Wilson) claim more than they hold at
full agreement, the very case a guard meets most: Wilson's bound passes 56 of 56 photos, yet
a model agreeing on exactly 95 % of photos would pass it 5.7 % of the time, not 5 %. All of 63
held-out photos agreeing bounds it at 95.4 %: that passes; one of them disagreeing, or fewer
than `MIN_GUARD_IMAGES` (59) photos, cannot prove it and refuses. Its accuracy on the labelled
ones must not be lower than FP32's either. A precision that fails is not served; the log says
why. These are pure functions of the outputs: quantize.py and runtime/deciding.py do the work
around them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

# What --precision may ask for; runtime/decisions.PRECISIONS: what a load serves in (no "auto").
PRECISION_CHOICES = ("fp32", "int8", "bf16", "auto")
REDUCED = ("int8", "bf16")
# The guard's claim: with 95 % confidence, the reduced model's top-1 is FP32's on at least 95 %
# of photos like the held-out ones.
AGREEMENT_MIN = 0.95
CONFIDENCE = 0.95
# The fewest held-out photos whose full agreement reaches it: (1 - confidence)^(1/n) >= min.
MIN_GUARD_IMAGES = math.ceil(math.log(1 - CONFIDENCE) / math.log(AGREEMENT_MIN))


def agreement_lower_bound(agreeing: int, images: int) -> float:
    """The one-sided `CONFIDENCE` exact (Clopper-Pearson) lower bound on a share seen as
    agreeing / images: the smallest share p under which seeing `agreeing` or more of `images`
    still has a chance of at least 1 - CONFIDENCE."""
    if images <= 0 or agreeing <= 0:
        return 0.0
    alpha = 1 - CONFIDENCE
    if agreeing == images:
        return alpha ** (1 / images)

    def at_least(p: float) -> float:  # P(X >= agreeing) for X ~ Binomial(images, p)
        return sum(
            math.comb(images, k) * p**k * (1 - p) ** (images - k)
            for k in range(agreeing, images + 1)
        )

    low, high = 0.0, agreeing / images
    for _ in range(60):  # bisection: at_least grows with p
        middle = (low + high) / 2
        low, high = (middle, high) if at_least(middle) < alpha else (low, middle)
    return low


@dataclass(frozen=True)
class Verdict:
    """What the guard measured of one reduced precision, and whether it may be served."""

    precision: str
    passed: bool
    agreement: float  # share of held-out photos whose top-1 is FP32's
    agreement_bound: float  # its one-sided CONFIDENCE exact lower bound
    accuracy: float | None  # on the labelled held-out photos; None when none is labelled
    fp32_accuracy: float | None
    images: int
    reason: str  # why it failed, or "" when it passed

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        accuracy = (
            f", accuracy {self.accuracy:.1%} (FP32 {self.fp32_accuracy:.1%})"
            if self.accuracy is not None and self.fp32_accuracy is not None
            else ""
        )
        return (
            f"top-1 agreement with FP32 {self.agreement:.1%} on {self.images} held-out photos, "
            f"at least {self.agreement_bound:.1%} with {CONFIDENCE:.0%} confidence "
            f"(one-sided exact bound){accuracy}"
        )


def judge(precision: str, fp32: np.ndarray, reduced: np.ndarray, labels: np.ndarray) -> Verdict:
    """The guard. `fp32` and `reduced`: [N, classes] outputs on the same held-out photos;
    `labels`: [N] class indices, -1 where a photo has none."""
    images = len(fp32)
    fp32_top, reduced_top = fp32.argmax(axis=1), reduced.argmax(axis=1)
    agreeing = int(np.sum(fp32_top == reduced_top))
    agreement = agreeing / images if images else 0.0
    bound = agreement_lower_bound(agreeing, images)
    labelled = labels >= 0
    accuracy = fp32_accuracy = None
    if labelled.any():
        accuracy = float(np.mean(reduced_top[labelled] == labels[labelled]))
        fp32_accuracy = float(np.mean(fp32_top[labelled] == labels[labelled]))
    reasons = []
    if images < MIN_GUARD_IMAGES:
        reasons.append(too_few(images))
    elif bound < AGREEMENT_MIN:
        reasons.append(
            f"top-1 agreement {agreement:.1%} ({agreeing} of {images}): at least {bound:.1%} "
            f"with {CONFIDENCE:.0%} confidence < {AGREEMENT_MIN:.0%}"
        )
    if accuracy is not None and fp32_accuracy is not None and accuracy < fp32_accuracy:
        reasons.append(f"accuracy {accuracy:.1%} < FP32's {fp32_accuracy:.1%}")
    return Verdict(
        precision,
        not reasons,
        agreement,
        bound,
        accuracy,
        fp32_accuracy,
        images,
        "; ".join(reasons),
    )


def too_few(images: int) -> str:
    """Why `images` held-out photos can never pass (fewer than MIN_GUARD_IMAGES)."""
    return (
        f"{images} held-out photos cannot show {AGREEMENT_MIN:.0%} agreement with "
        f"{CONFIDENCE:.0%} confidence: the guard needs at least {MIN_GUARD_IMAGES}"
    )


def refused_unjudged(precision: str, images: int) -> Verdict:
    """The verdict on a folder too small to prove anything, reached without quantizing."""
    return Verdict(precision, False, 0.0, 0.0, None, None, images, too_few(images))


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_unsupported(flags: frozenset[str]) -> str:
    """Why this CPU cannot run bf16 natively, or "" when it can."""
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return ""
    return "this CPU has neither AVX512_BF16 nor AMX-BF16: bf16 would be emulated, slower than fp32"


class Candidates(NamedTuple):
    tried: list[str]  # the reduced precisions to try, in order
    skipped: list[str]  # one line for each skipped, saying why


def candidates(choice: str, flags: frozenset[str]) -> Candidates:
    """The reduced precisions to try for `choice` on a CPU with `flags`, and those skipped."""
    skipped = []
    wanted = list(REDUCED) if choice == "auto" else [p for p in REDUCED if p == choice]
    if "bf16" in wanted and (why := bf16_unsupported(flags)):
        wanted.remove("bf16")
        skipped.append(f"bf16: {why}")
    return Candidates(tried=wanted, skipped=skipped)
