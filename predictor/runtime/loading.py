"""Load the model to serve: warm from the compiled-model cache when it holds this load's
decisions, else cold (runtime/runtimes.py's FP32 choice, then the precision asked for), saving them.

A warm start compiles the cached OpenVINO model and is ready: it never imports TensorFlow
(a model served by TensorFlow still loads with it, but skips converting and measuring).
A cold start decides in a child process (`isolated=True`, what the server does), which
writes the entry and exits, and then loads warm: TensorFlow, the conversion and the
quantization take ~1 GB that a process keeps once it has touched it (measured: 1.16 GB
resident after a cold start of the demo model in-process, against ~0.4 GB warm), and a 2 GiB
pod needs that room for requests.
A cold start with a reduced precision quantizes (int8) or recompiles (bf16), runs the guard
(precision/guard.py) on the held-out photos and serves the precision that passed, FP32 otherwise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contract import PIXELS_SHAPE
from ..imaging import ImageLimits
from ..precision import calibration, guard
from .compiled_cache import Entry, key
from .cpus import available_cpus
from .measure import best_batch_size, images_per_second
from .runtimes import ModelFileError, OpenVINORuntime, Runtime, _first_line, convert, load_runtime

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    runtime: Runtime
    decisions: dict  # what the cache keeps: runtime, precision, verdicts, max_batch_size
    entry: Entry
    from_cache: bool
    seconds: dict[str, float] = field(default_factory=dict)


def load(
    path: Path,
    sha256: str,
    *,
    choice: str = "auto",
    wanted: str = "fp32",
    threads: int | None = None,
    max_batch_size: int = 0,
    cache_dir: Path,
    calibration_dir: Path = calibration.DEFAULT_DIR,
    limits: ImageLimits | None = None,
    isolated: bool = False,
) -> Loaded:
    """`max_batch_size` 0: measured at a cold load (best_batch_size), kept with the rest.
    `isolated`: a cold load decides in a child process, then loads what it saved."""
    threads = threads or available_cpus()
    photos_key = ""
    if wanted != "fp32":
        try:
            photos_key = calibration.fingerprint(calibration_dir, limits)
        except (calibration.CalibrationError, OSError) as exc:
            photos_key = f"unusable: {exc}"
    entry = Entry.under(
        cache_dir,
        key(
            model=sha256,
            runtime=choice,
            precision=wanted,
            threads=threads,
            photos=photos_key,
            max_batch_size=max_batch_size,
        ),
    )
    started = time.monotonic()
    served: Runtime
    cached = entry.read()
    if cached is not None:
        try:
            served = warm(path, threads, *cached)
            logger.info(
                "runtime %s, precision %s: decided at an earlier start (cache %s)",
                served.name,
                served.precision,
                entry.folder.name,
            )
            return Loaded(served, cached[0], entry, True, {"load": time.monotonic() - started})
        except Exception as exc:  # a model OpenVINO read but cannot compile or run
            entry.discard(f"cannot be served ({_first_line(exc)})")
    if isolated and choice != "tensorflow":
        options = dict(
            choice=choice,
            wanted=wanted,
            threads=threads,
            max_batch_size=max_batch_size,
            cache_dir=cache_dir,
            calibration_dir=calibration_dir,
            limits=limits,
        )
        logger.info("deciding how to serve the model in a child process (cold start)")
        decide_in_child(path, sha256, options)
        cached = entry.read()
        if cached is not None:
            try:
                served = warm(path, threads, *cached)
                seconds = {"load": time.monotonic() - started}
                return Loaded(served, cached[0], entry, False, seconds)
            except Exception as exc:  # as above: the entry it wrote cannot be served here
                entry.discard(f"cannot be served ({_first_line(exc)})")
        else:
            logger.warning(
                "the load's decisions could not be kept in %s: deciding again in this process",
                entry.folder.parent,
            )
    fp32 = load_runtime(path, choice, threads)
    served = fp32
    verdicts: list[guard.Verdict] = []
    photos_digest = ""
    if wanted != "fp32":
        served, verdicts, photos_digest = reduce(fp32, wanted, threads, calibration_dir, limits)
    decisions = {
        "runtime": served.name,
        "precision": served.precision,
        "verdicts": [verdict.as_dict() for verdict in verdicts],
        "max_batch_size": max_batch_size or best_batch_size(served),
    }
    source = getattr(served, "source", None) if served.name == "openvino" else None
    if photos_digest in ("", photos_key):  # else the folder changed while it was read
        entry.save(decisions, source)
    for runtime in (fp32, served):
        if isinstance(runtime, OpenVINORuntime):
            runtime.source = None  # its weights: hundreds of MB for VGG16
    return Loaded(served, decisions, entry, False, {"load": time.monotonic() - started})


def decide_in_child(path: Path, sha256: str, options: dict, target=None) -> None:
    """Run a cold `load` in a child process that saves its entry and exits, returning its
    memory. A refusal there (a model that is not the contract's, say) is raised here with its
    message; a child that dies (killed for memory) is a ModelFileError saying so."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # not fork: gRPC's and TF's threads
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(
        target=target or _decide,  # another target: the tests' child that dies
        args=(path, sha256, options, sending, _log_format()),
        name="model-load",
        daemon=True,
    )
    child.start()
    sending.close()
    try:
        outcome = receiving.recv()
    except EOFError:  # it died without a word: killed (for memory, most likely)
        outcome = None
    child.join()
    if outcome is None:
        raise ModelFileError(
            f"deciding how to serve {path.name} ended with exit code {child.exitcode} "
            "(killed for memory? the container's limit may be too small for this model)"
        )
    kind, message = outcome
    if kind == "ModelFileError":
        raise ModelFileError(message)
    if kind != "ok":
        raise RuntimeError(f"{kind}: {message}")


def _log_format() -> tuple[str, str | None] | None:
    handlers = logging.getLogger("predictor").handlers
    formatter = handlers[0].formatter if handlers else None
    return (formatter._fmt or "", formatter.datefmt) if formatter is not None else None


def _decide(path: Path, sha256: str, options: dict, sending, log_format) -> None:
    """The child's side: the cold load, its log lines in the server's format, its outcome."""
    from .. import logsafe

    ours = logging.getLogger("predictor")
    handler = logging.StreamHandler()
    if log_format is not None:
        handler.setFormatter(logging.Formatter(*log_format))
    ours.handlers, ours.propagate = [handler], False
    ours.setLevel(logging.INFO)
    logsafe.install()
    try:
        load(path, sha256, **options)
        sending.send(("ok", ""))
    except BaseException as exc:  # told to the parent, which decides what it means
        sending.send((type(exc).__name__, str(exc).strip()[:2000] or type(exc).__name__))
    finally:
        sending.close()


def warm(path: Path, threads: int, decisions: dict, model) -> Runtime:
    """The runtime an entry describes, compiled and warmed up as a cold load leaves it."""
    served: Runtime
    if model is not None:
        served = OpenVINORuntime.compile(model, threads, decisions["precision"])
        served.source = None
    else:
        served = load_runtime(path, "tensorflow", threads)
    served(np.zeros((1, *PIXELS_SHAPE), dtype=np.float32))
    return served


def reduce(
    fp32: Runtime,
    wanted: str,
    threads: int,
    calibration_dir: Path,
    limits: ImageLimits | None = None,
) -> tuple[Runtime, list[guard.Verdict], str]:
    """The reduced-precision runtime that passes the guard (for `auto`, the fastest of them
    and FP32), or `fp32` itself; the guard's verdicts; the calibration photos' digest."""
    tried, skipped = guard.candidates(wanted, guard.cpu_flags())
    for line in skipped:  # asked for by name: a warning; one of auto's candidates: news
        level = logging.INFO if wanted == "auto" else logging.WARNING
        logger.log(level, "precision %s%s", line, "" if wanted == "auto" else ": serving fp32")
    if not tried:
        return fp32, [], ""
    try:
        photos = calibration.load(calibration_dir, limits)
        source = openvino_source(fp32, photos.held_out)
    except Exception as exc:  # a model OpenVINO cannot convert, a calibration folder unusable
        logger.warning("precision %s not tried (%s): serving fp32", wanted, _first_line(exc))
        return fp32, [], ""
    logger.info("precision: calibration photos from %s: %s", calibration_dir, photos.describe())
    reference = run(fp32, photos.held_out)
    passing: list[Runtime] = []
    verdicts = []
    for candidate in tried:
        started = time.monotonic()
        model = quantize_int8(source, photos.calibration) if candidate == "int8" else source
        runtime = OpenVINORuntime.compile(model, threads, candidate)
        verdict = guard.judge(
            candidate, reference, run(runtime, photos.held_out), photos.held_out_labels
        )
        verdicts.append(verdict)
        took = time.monotonic() - started
        if verdict.passed:
            passing.append(runtime)
            logger.info(
                "precision %s passed the guard in %.1f s: %s", candidate, took, verdict.describe()
            )
        else:
            logger.warning(
                "precision %s refused by the guard (%s; %s)",
                candidate,
                verdict.reason,
                verdict.describe(),
            )
    if not passing:
        logger.warning("precision %s: no reduced precision passed the guard: serving fp32", wanted)
        return fp32, verdicts, photos.digest
    if wanted != "auto":
        return passing[0], verdicts, photos.digest
    return fastest([fp32, *passing], photos.held_out[:4]), verdicts, photos.digest


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
    from ..precision.quantize import quantize_int8 as quantize

    return quantize(source, pixels)


def run(runtime: Runtime, pixels: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([runtime(pixels[i : i + batch]) for i in range(0, len(pixels), batch)])


def fastest(runtimes: list[Runtime], pixels: np.ndarray) -> Runtime:
    speeds = [images_per_second(r, pixels, callers=r.parallel)[0] for r in runtimes]
    logger.info(
        "precision auto: %s",
        ", ".join(f"{r.precision} {s:.1f} images/s" for r, s in zip(runtimes, speeds, strict=True)),
    )
    return runtimes[int(np.argmax(speeds))]
