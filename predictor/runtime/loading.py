"""Load the model to serve, in steps: the cache entry for this load (`entry_for`), then warm from
it (`warm_from_cache`), or cold: decided in a child process that saves an entry, then warm from
that (`decided_in_child`), or decided here (`decide_here`: deciding.py's `decide`, then `keep`,
then `free`).

A warm start compiles the cached OpenVINO model and is ready: it never imports TensorFlow
(a model served by TensorFlow still loads with it, but skips converting and measuring).
A cold start decides in a child process (`isolated=True`, what the server does), which
writes the entry and exits, and then loads warm: TensorFlow, the conversion and the
quantization take ~1 GB that a process keeps once it has touched it (measured: 1.16 GB
resident after a cold start of the demo model in-process, against ~0.4 GB warm), and a 2 GiB
pod needs that room for requests.
A cold start with a reduced precision quantizes (int8) or recompiles (bf16), runs the guard
(precision/guard.py) on the held-out photos and serves the precision that passed, FP32 otherwise
(deciding.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contract import PIXELS_SHAPE
from ..imaging import ImageLimits
from ..precision import calibration
from .base import ModelFileError, Runtime, first_line
from .cache_key import key
from .compiled_cache import Cached, Entry
from .cpus import available_cpus
from .deciding import Decided, decide
from .decisions import Decisions
from .runtimes import OpenVINORuntime, load_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    """What a load is asked for, besides the model: each option but `cache_dir` shapes the
    decisions, so each is part of the entry's key. A child deciding for the load gets these."""

    choice: str  # the runtime: "auto", "openvino" or "tensorflow"
    wanted: str  # the precision: "fp32", "int8", "bf16" or "auto"
    threads: int
    max_batch_size: int  # 0: measured at the cold load
    cache_dir: Path
    calibration_dir: Path
    limits: ImageLimits | None


@dataclass(frozen=True)
class Served:
    """A runtime ready to serve, and the decisions it was made from."""

    runtime: Runtime
    decisions: Decisions


@dataclass
class Loaded:
    """What a load gives the server: the runtime, the decisions it was made from, the cache
    entry that holds them, whether an earlier start decided them, and how long it took."""

    runtime: Runtime
    decisions: Decisions
    entry: Entry
    from_cache: bool  # decided at an earlier start (not by this load, here or in its child)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Keyed:
    """This load's cache entry, and the calibration photos' fingerprint in its key."""

    entry: Entry
    photos: str


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
    options = LoadOptions(
        choice=choice,
        wanted=wanted,
        threads=threads or available_cpus(),
        max_batch_size=max_batch_size,
        cache_dir=cache_dir,
        calibration_dir=calibration_dir,
        limits=limits,
    )
    started = time.monotonic()
    keyed = entry_for(sha256, options)
    served = warm_from_cache(path, keyed.entry, options.threads)
    from_cache = served is not None
    if served is None and isolated and options.choice != "tensorflow":
        served = decided_in_child(path, sha256, options, keyed.entry)
    if served is None:
        served = decide_here(path, options, keyed)
    seconds = {"load": time.monotonic() - started}
    return Loaded(served.runtime, served.decisions, keyed.entry, from_cache, seconds)


def entry_for(sha256: str, options: LoadOptions) -> Keyed:
    """The cache entry of this load: its key names the model, every option that shapes the
    decisions and the calibration photos (the guard's verdicts and the monitoring's baseline
    depend on them; an unusable folder is keyed by why, so fixing it decides again)."""
    try:
        photos = calibration.fingerprint(options.calibration_dir, options.limits)
    except (calibration.CalibrationError, OSError) as exc:
        photos = f"unusable: {exc}"
    name = key(
        model=sha256,
        runtime=options.choice,
        precision=options.wanted,
        threads=options.threads,
        photos=photos,
        max_batch_size=options.max_batch_size,
    )
    return Keyed(Entry.under(options.cache_dir, name), photos)


def warm_from_cache(path: Path, entry: Entry, threads: int) -> Served | None:
    """The runtime an earlier start decided, from its entry, or None when there is none to use
    (none, or one that is damaged or cannot be served here: deleted, and the load goes cold)."""
    cached = entry.read()
    runtime = None if cached is None else serve_entry(path, entry, cached, threads)
    if cached is None or runtime is None:
        return None
    logger.info(
        "runtime %s, precision %s: decided at an earlier start (cache %s)",
        runtime.name,
        runtime.precision,
        entry.folder.name,
    )
    return Served(runtime, cached.decisions)


def decided_in_child(path: Path, sha256: str, options: LoadOptions, entry: Entry) -> Served | None:
    """Decide in a child process, which saves the entry and exits (with the memory deciding
    took), then serve the entry it saved. None when it could not keep one (a read-only or full
    cache) or the one it kept cannot be served here: this process then decides itself."""
    logger.info("deciding how to serve the model in a child process (cold start)")
    decide_in_child(path, sha256, options)
    cached = entry.read()
    if cached is None:
        logger.warning(
            "the load's decisions could not be kept in %s: deciding again in this process",
            entry.folder.parent,
        )
        return None
    runtime = serve_entry(path, entry, cached, options.threads)
    return None if runtime is None else Served(runtime, cached.decisions)


def decide_here(path: Path, options: LoadOptions, keyed: Keyed) -> Served:
    """The cold load in this process: decide (deciding.py), keep what was decided for the next
    start, free what serving does not need."""
    decided = decide(
        path,
        choice=options.choice,
        wanted=options.wanted,
        threads=options.threads,
        max_batch_size=options.max_batch_size,
        calibration_dir=options.calibration_dir,
        limits=options.limits,
    )
    keep(keyed, decided)
    free(decided)
    return Served(decided.runtime, decided.decisions)


def keep(keyed: Keyed, decided: Decided) -> None:
    """Save the decisions and the model served as this load's entry, unless the calibration
    folder changed while the load read it: the key would name photos the verdicts were not
    judged on."""
    if decided.photos_digest in ("", keyed.photos):
        keyed.entry.save(decided.decisions, decided.openvino_model)


def free(decided: Decided) -> None:
    """Drop the OpenVINO models the runtimes were compiled from, once saved: their weights are
    hundreds of MB for VGG16, and the compiled models hold their own copy."""
    for runtime in (decided.fp32, decided.runtime):
        if isinstance(runtime, OpenVINORuntime):
            runtime.source = None


def serve_entry(path: Path, entry: Entry, cached: Cached, threads: int) -> Runtime | None:
    """The entry's runtime compiled and warmed up, or None if it cannot be: an entry OpenVINO
    read but cannot compile or run here is deleted (no later start could serve it either)."""
    try:
        return warm(path, threads, cached)
    except Exception as exc:  # a model OpenVINO read but cannot compile or run
        entry.discard(f"cannot be served ({first_line(exc)})")
        return None


def warm(path: Path, threads: int, cached: Cached) -> Runtime:
    """The runtime an entry describes, compiled and warmed up as a cold load leaves it."""
    served: Runtime
    if cached.model is not None:
        served = OpenVINORuntime.compile(cached.model, threads, cached.decisions.precision)
        served.source = None
    else:
        served = load_runtime(path, "tensorflow", threads)
    served(np.zeros((1, *PIXELS_SHAPE), dtype=np.float32))
    return served


# -- the child process that decides ------------------------------------------------------------


def decide_in_child(
    path: Path, sha256: str, options: LoadOptions, target: Callable[..., None] | None = None
) -> None:
    """Run a cold load in a child process that saves its entry and exits, returning its
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


def _decide(path: Path, sha256: str, options: LoadOptions, sending, log_format) -> None:
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
        keyed = entry_for(sha256, options)  # the parent's: the same inputs, the same key
        # An entry saved since the parent looked (by another replica on a shared volume) is
        # served as it is; none, and the child decides.
        if warm_from_cache(path, keyed.entry, options.threads) is None:
            decide_here(path, options, keyed)
        sending.send(("ok", ""))
    except BaseException as exc:  # told to the parent, which decides what it means
        sending.send((type(exc).__name__, str(exc).strip()[:2000] or type(exc).__name__))
    finally:
        sending.close()
