"""Which arithmetic the model runs in, and the guard a reduced precision must pass at load.

- `fp32` (the default): Keras's values, to 1e-4 (the runtime check in runtime/runtimes.py).
- `int8`: the OpenVINO model quantized after training by NNCF, calibrated on a folder of
  photos (calibration.py). About 2x (no VNNI) to 4x (AVX512-VNNI / AMX) FP32's images/s.
- `bf16`: OpenVINO computing in bfloat16 (`INFERENCE_PRECISION_HINT=bf16`), on CPUs with
  AVX512_BF16 or AMX only: elsewhere OpenVINO would emulate it slower than FP32.
- `auto`: the fastest of those that pass the guard, FP32 when none does.

The guard (`judge`): on held-out photos (never used for calibration) the reduced model's top-1
must agree with FP32's on at least `AGREEMENT_MIN` of them, and its accuracy on the labelled
ones must not be lower than FP32's. A precision that fails is not served; the log says why.
These are pure functions of the outputs: quantize.py and runtime/deciding.py do the work around
them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

# What --precision may ask for; runtime/decisions.PRECISIONS: what a load serves in (no "auto").
PRECISION_CHOICES = ("fp32", "int8", "bf16", "auto")
REDUCED = ("int8", "bf16")
AGREEMENT_MIN = 0.99
# Below this the guard's answer is noise. Above it, agreement on all of n photos shows the
# disagreement rate is small, not that it is under 1 %: that takes ~100 photos (the README
# says so; the 30 shipped photos hold out 15).
MIN_GUARD_IMAGES = 10


@dataclass(frozen=True)
class Verdict:
    """What the guard measured of one reduced precision, and whether it may be served."""

    precision: str
    passed: bool
    agreement: float  # share of held-out photos whose top-1 is FP32's
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
        return f"top-1 agreement with FP32 {self.agreement:.1%} on {self.images} photos{accuracy}"


def judge(precision: str, fp32: np.ndarray, reduced: np.ndarray, labels: np.ndarray) -> Verdict:
    """The guard. `fp32` and `reduced`: [N, classes] outputs on the same held-out photos;
    `labels`: [N] class indices, -1 where a photo has none."""
    images = len(fp32)
    if images < MIN_GUARD_IMAGES:
        return Verdict(
            precision, False, 0.0, None, None, images,
            f"{images} held-out photos; the guard needs at least {MIN_GUARD_IMAGES}",
        )  # fmt: skip
    fp32_top, reduced_top = fp32.argmax(axis=1), reduced.argmax(axis=1)
    agreement = float(np.mean(fp32_top == reduced_top))
    labelled = labels >= 0
    accuracy = fp32_accuracy = None
    if labelled.any():
        accuracy = float(np.mean(reduced_top[labelled] == labels[labelled]))
        fp32_accuracy = float(np.mean(fp32_top[labelled] == labels[labelled]))
    reasons = []
    if agreement < AGREEMENT_MIN:
        reasons.append(f"top-1 agreement {agreement:.1%} < {AGREEMENT_MIN:.0%}")
    if accuracy is not None and fp32_accuracy is not None and accuracy < fp32_accuracy:
        reasons.append(f"accuracy {accuracy:.1%} < FP32's {fp32_accuracy:.1%}")
    return Verdict(
        precision, not reasons, agreement, accuracy, fp32_accuracy, images, "; ".join(reasons)
    )


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
