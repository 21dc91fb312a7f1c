"""How fast a runtime runs on this CPU, measured: images per second with parallel callers, and
the batch size that pays. Used at load (the runtime choice, the batcher's size) and by the
benchmarks' ceilings, so both measure the same way."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from ..contract import PIXELS_SHAPE
from .base import Runtime


class Speed(NamedTuple):
    rate: float  # images per second, all callers together
    seconds_per_call: float  # mean wall-clock seconds of one call


def images_per_second(
    runtime: Runtime, pixels: np.ndarray, callers: int = 1, seconds: float = 0.5
) -> Speed:
    """`callers` threads calling `runtime(pixels)` back to back for `seconds` (at least two
    calls each, after one warm-up call each)."""
    start = threading.Barrier(callers + 1)

    def caller() -> int:
        runtime(pixels)  # warm: a new shape may compile or allocate
        start.wait()
        began, calls = time.perf_counter(), 0
        while calls < 2 or time.perf_counter() - began < seconds:
            runtime(pixels)
            calls += 1
        return calls

    with ThreadPoolExecutor(callers) as pool:
        futures = [pool.submit(caller) for _ in range(callers)]
        start.wait()
        began = time.perf_counter()
        calls = sum(future.result() for future in futures)
    elapsed = time.perf_counter() - began
    return Speed(rate=calls * len(pixels) / elapsed, seconds_per_call=elapsed * callers / calls)


def best_batch_size(runtime: Runtime, most: int = 32, seconds: float = 0.25) -> int:
    """The batch size the batcher should aim for on this model and CPU, measured.

    Runs `runtime.parallel` callers at once, as under load, at batch 1, 2, 4, … `most`, and
    returns the largest batch within 5 % of the best images/s seen: each model call also costs
    the server a hand-off to a thread and back, which this measurement does not see, so of
    batches that run the model equally fast the largest serves best. A batch past the best
    rate only adds latency: small models peak at 2-4 images (their activations stay in cache),
    large ones at 16-32. Stops once a call takes over half a second or the rate falls by 10 %,
    so a large model adds a few seconds to loading at most.
    """
    rates: dict[int, float] = {}
    batch = 1
    while batch <= most:
        pixels = np.zeros((batch, *PIXELS_SHAPE), dtype=np.float32)
        speed = images_per_second(runtime, pixels, runtime.parallel, seconds)
        rates[batch] = speed.rate
        if speed.seconds_per_call > 0.5 or speed.rate < 0.9 * max(rates.values()):
            break
        batch *= 2
    best = max(rates.values())
    return max(b for b, rate in rates.items() if rate >= 0.95 * best)
