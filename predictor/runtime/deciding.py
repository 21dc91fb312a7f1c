"""The cold load's decision: which runtime, which precision, which batch size, and why.

`decide` runs it: the FP32 runtime (runtimes.py: OpenVINO or TensorFlow, the faster measured),
then the precision asked for (`reduce`: each reduced precision quantized (int8) or recompiled
(bf16) and judged by the guard on the held-out photos, precision/guard.py), then the batch size
(measure.py), unless one was set, and the baseline of the served model's answers on the
calibration folder's photos (monitoring.py). Everything it decides depends only on its inputs
and on the code it runs, which is why the compiled-model cache may keep it (cache_key.py names
this module and computes what else it runs from its imports).

It neither reads nor writes the cache, nor frees anything: loading.py does, around it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..imaging import ImageLimits
from ..monitoring import MIN_BASELINE_IMAGES, Baseline, summarize
from ..precision import calibration, guard
from .base import Runtime, first_line
from .decisions import Decisions
from .measure import best_batch_size, images_per_second
from .runtimes import OpenVINORuntime, convert, load_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reduced:
    """What `reduce` settled on: the runtime to serve, the guard's verdicts on each precision
    tried, and whether its log line told the calibration folder unusable."""

    runtime: Runtime
    verdicts: tuple[guard.Verdict, ...] = ()
    said_unusable: bool = False


@dataclass(frozen=True)
class Decided:
    """A cold load's outcome: the runtime to serve and the decisions to keep, the FP32 runtime it
    started from (loading.py frees both runtimes' sources), and the calibration photos' digest
    (the cache keeps the decisions only if the folder did not change while it was read)."""

    runtime: Runtime
    decisions: Decisions
    fp32: Runtime
    photos_digest: str

    @property
    def openvino_model(self):
        """The OpenVINO model the served runtime was compiled from (what the cache keeps), or
        None when TensorFlow serves."""
        return self.runtime.source if isinstance(self.runtime, OpenVINORuntime) else None


def decide(
    path: Path,
    *,
    choice: str,
    wanted: str,
    threads: int,
    max_batch_size: int,
    calibration_dir: Path,
    limits: ImageLimits | None,
) -> Decided:
    """Decide how to serve `path`: the runtime `choice` picks at FP32, then the precision
    `wanted`, then the batch size (`max_batch_size` 0: measured on the runtime served), then
    the baseline. The calibration folder is read once, for the precision and the baseline."""
    fp32 = load_runtime(path, choice, threads)
    photos = read_photos(calibration_dir, limits)
    reduced = Reduced(fp32)
    if wanted != "fp32":
        reduced = reduce(fp32, wanted, threads, photos, calibration_dir)
    served = reduced.runtime
    baseline = measure_baseline(served, photos, calibration_dir, said=reduced.said_unusable)
    decisions = Decisions(
        runtime=served.name,
        precision=served.precision,
        max_batch_size=max_batch_size or best_batch_size(served),
        verdicts=reduced.verdicts,
        baseline=baseline,
    )
    digest = photos.digest if isinstance(photos, calibration.CalibrationSet) else ""
    return Decided(served, decisions, fp32, digest)


def read_photos(
    calibration_dir: Path, limits: ImageLimits | None
) -> calibration.CalibrationSet | Unusable:
    """The calibration folder's photos, or why they cannot be used (in one line)."""
    try:
        return calibration.load(calibration_dir, limits)
    except Exception as exc:  # a folder unusable however it is (calibration.py refuses most)
        return Unusable(first_line(exc))


@dataclass(frozen=True)
class Unusable:
    """A calibration folder that could not be read: why, in one line."""

    reason: str


def measure_baseline(
    runtime: Runtime,
    photos: calibration.CalibrationSet | Unusable,
    calibration_dir: Path,
    said: bool = False,
) -> Baseline | None:
    """The baseline of the model's answers (monitoring.py): the served runtime's on every photo
    of the calibration folder. None when the folder is unusable or holds too few photos: the
    load says why in one line (unless `said`: the precision's line has told the folder's
    problem already). One image a call: shapes the runtime has already run (a new batch shape
    would retrace a TensorFlow runtime)."""
    if isinstance(photos, Unusable):
        if not said:
            logger.warning("monitoring: no baseline (%s)", photos.reason)
        return None
    pixels = np.concatenate([photos.calibration, photos.held_out])
    if len(pixels) < MIN_BASELINE_IMAGES:
        logger.warning(
            "monitoring: no baseline (%d distinct photos in %s; %d are needed)",
            len(pixels),
            calibration_dir,
            MIN_BASELINE_IMAGES,
        )
        return None
    baseline = Baseline.of(summarize(pixels, run(runtime, pixels, batch=1)))
    logger.info("monitoring: baseline of %s", baseline.describe())
    return baseline


def reduce(
    fp32: Runtime,
    wanted: str,
    threads: int,
    photos: calibration.CalibrationSet | Unusable,
    calibration_dir: Path,
) -> Reduced:
    """The reduced-precision runtime that passes the guard (for `auto`, the fastest of them
    and FP32), or `fp32` itself; with the guard's verdicts."""
    candidates = guard.candidates(wanted, guard.cpu_flags())
    for line in candidates.skipped:  # asked for by name: a warning; one of auto's candidates: news
        level = logging.INFO if wanted == "auto" else logging.WARNING
        logger.log(level, "precision %s%s", line, "" if wanted == "auto" else ": serving fp32")
    if not candidates.tried:
        return Reduced(fp32)
    if isinstance(photos, Unusable):
        logger.warning("precision %s not tried (%s): serving fp32", wanted, photos.reason)
        return Reduced(fp32, said_unusable=True)
    try:
        source = openvino_source(fp32, photos.held_out)
    except Exception as exc:  # a model OpenVINO cannot convert
        logger.warning("precision %s not tried (%s): serving fp32", wanted, first_line(exc))
        return Reduced(fp32)
    logger.info("precision: calibration photos from %s: %s", calibration_dir, photos.describe())
    reference = run(fp32, photos.held_out)
    judged = [try_precision(c, source, photos, reference, threads) for c in candidates.tried]
    passing = [one.runtime for one in judged if one.runtime is not None]
    if not passing:
        logger.warning("precision %s: no reduced precision passed the guard: serving fp32", wanted)
        served = fp32
    elif wanted != "auto":
        served = passing[0]
    else:
        served = fastest([fp32, *passing], photos.held_out[:4])
    return Reduced(served, tuple(one.verdict for one in judged))


@dataclass(frozen=True)
class Judged:
    verdict: guard.Verdict
    runtime: Runtime | None  # None when refused: not kept a moment longer (its memory)


def try_precision(
    precision: str,
    source,
    photos: calibration.CalibrationSet,
    reference: np.ndarray,
    threads: int,
) -> Judged:
    """One reduced precision of the OpenVINO model `source`: quantized on the calibration
    photos (int8) or recompiled (bf16), then judged by the guard against FP32's outputs on the
    held-out ones (`reference`). The log says how it went."""
    if len(photos.held_out) < guard.MIN_GUARD_IMAGES:  # nothing it could prove: not quantized
        verdict = guard.refused_unjudged(precision, len(photos.held_out))
        logger.warning("precision %s refused by the guard (%s)", precision, verdict.reason)
        return Judged(verdict, None)
    started = time.monotonic()
    model = quantize_int8(source, photos.calibration) if precision == "int8" else source
    runtime = OpenVINORuntime.compile(model, threads, precision)
    outputs = run(runtime, photos.held_out)
    verdict = guard.judge(precision, reference, outputs, photos.held_out_labels)
    took = time.monotonic() - started
    if not verdict.passed:
        logger.warning(
            "precision %s refused by the guard (%s; %s)",
            precision,
            verdict.reason,
            verdict.describe(),
        )
        return Judged(verdict, None)
    logger.info("precision %s passed the guard in %.1f s: %s", precision, took, verdict.describe())
    return Judged(verdict, runtime)


def openvino_source(fp32: Runtime, pixels: np.ndarray):
    """The FP32 OpenVINO model to reduce: the one served, or, when TensorFlow serves, a fresh
    conversion held to the same check as runtime/runtimes.py's (Keras's values within 1e-4)."""
    if isinstance(fp32, OpenVINORuntime) and fp32.source is not None:
        return fp32.source
    converted = convert(fp32.model)  # type: ignore[attr-defined]  # a KerasRuntime
    check = OpenVINORuntime.compile(converted, 1)
    difference = float(np.abs(run(check, pixels) - run(fp32, pixels)).max())
    if difference > 1e-4:
        raise ValueError(f"OpenVINO's outputs differ from Keras's by {difference:.1e}")
    return converted


def quantize_int8(source, pixels: np.ndarray):
    """precision/quantize.py's, imported only when a load quantizes (NNCF takes seconds)."""
    from ..precision.quantize import quantize_int8 as quantize

    return quantize(source, pixels)


def run(runtime: Runtime, pixels: np.ndarray, batch: int = 8) -> np.ndarray:
    """The runtime's outputs on every image of `pixels`, `batch` at a time."""
    return np.concatenate([runtime(pixels[i : i + batch]) for i in range(0, len(pixels), batch)])


def fastest(runtimes: list[Runtime], pixels: np.ndarray) -> Runtime:
    """The runtime with the most images per second on `pixels`, each called as it is served."""
    speeds = [images_per_second(r, pixels, callers=r.parallel).rate for r in runtimes]
    logger.info(
        "precision auto: %s",
        ", ".join(f"{r.precision} {s:.1f} images/s" for r, s in zip(runtimes, speeds, strict=True)),
    )
    return runtimes[int(np.argmax(speeds))]
