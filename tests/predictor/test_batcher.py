"""The batcher with a stand-in model, in process: concurrent callers share model calls, each gets
its own rows back, a failing call fails its batch only; the batch size that pays."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from predictor.batching import AdaptiveBatcher
from predictor.runtime.measure import best_batch_size

pytestmark = pytest.mark.unit


def slow_row_sums(pixels: np.ndarray) -> np.ndarray:
    """A stand-in model that takes 50 ms per call and answers each row with its own sum."""
    time.sleep(0.05)
    return pixels.reshape(len(pixels), -1).sum(axis=1, keepdims=True)


class Recorded:
    """The stand-in model, recording the size of each batch it is called with."""

    def __init__(self, model=slow_row_sums):
        self.model = model
        self.batch_sizes: list[int] = []

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(pixels))
        return self.model(pixels)


def test_concurrent_callers_share_calls_and_get_their_own_rows():
    model = Recorded()

    async def scenario():
        batcher = AdaptiveBatcher(model, ThreadPoolExecutor(1), max_batch_size=8)
        inputs = [np.full((1 + n % 3, 2), float(n)) for n in range(12)]
        answers = await asyncio.gather(*(batcher(x) for x in inputs))
        return inputs, answers

    inputs, answers = asyncio.run(scenario())
    for x, answer in zip(inputs, answers, strict=True):
        np.testing.assert_array_equal(answer, x.sum(axis=1, keepdims=True))
    assert sum(model.batch_sizes) == sum(len(x) for x in inputs)
    assert max(model.batch_sizes) <= 8
    assert len(model.batch_sizes) < len(inputs)  # calls were shared


def test_in_flight_bounds_how_many_model_calls_run_at_once():
    running, most = [0], [0]
    lock = threading.Lock()

    def counted(pixels):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return pixels

    async def scenario(in_flight):
        batcher = AdaptiveBatcher(
            counted, ThreadPoolExecutor(4), max_batch_size=2, in_flight=in_flight
        )
        inputs = [np.full((1, 1), float(n)) for n in range(12)]
        answers = await asyncio.gather(*(batcher(x) for x in inputs))
        return inputs, answers

    for in_flight in (1, 2):
        most[0] = 0
        inputs, answers = asyncio.run(scenario(in_flight))
        for x, answer in zip(inputs, answers, strict=True):
            np.testing.assert_array_equal(answer, x)
        assert most[0] == in_flight


class _FakeRuntime:
    """A model whose call costs 20 ms up to 8 images, then 20 ms more per image beyond 8."""

    parallel = 2

    def __init__(self):
        self.batches = []

    def __call__(self, pixels):
        self.batches.append(len(pixels))
        time.sleep(0.02 + 0.02 * max(0, len(pixels) - 8))
        return pixels[:, :1, 0, 0]


def test_best_batch_size_is_the_largest_that_still_pays():
    runtime = _FakeRuntime()
    assert best_batch_size(runtime, seconds=0.1) == 8  # 8 images per 20 ms; 16 take 180 ms
    assert max(runtime.batches) == 16  # it stopped once the rate fell
    assert best_batch_size(runtime, most=4, seconds=0.1) == 4


def test_best_batch_size_stops_at_calls_over_half_a_second():
    class Slow(_FakeRuntime):
        def __call__(self, pixels):
            self.batches.append(len(pixels))
            time.sleep(0.3 * len(pixels))  # no gain from batching, and slow
            return pixels[:, :1, 0, 0]

    runtime = Slow()
    started = time.perf_counter()
    assert best_batch_size(runtime, seconds=0.1) in (1, 2)
    assert max(runtime.batches) == 2
    assert time.perf_counter() - started < 8


def test_a_lone_request_on_an_idle_model_does_not_wait():
    async def scenario():
        batcher = AdaptiveBatcher(lambda p: p, ThreadPoolExecutor(1), max_wait=0.5)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            await batcher(np.ones((1, 2)))
            timings.append(time.perf_counter() - started)
        return timings

    assert max(asyncio.run(scenario())) < 0.1


def test_while_the_model_is_busy_requests_wait_for_company():
    """Requests arriving one by one during a call wait up to max_wait, so they share the next."""

    model = Recorded()

    async def scenario():
        batcher = AdaptiveBatcher(
            model, ThreadPoolExecutor(2), max_batch_size=8, max_wait=0.2, in_flight=2
        )
        first = asyncio.ensure_future(batcher(np.ones((1, 2))))
        await asyncio.sleep(0.01)  # the first call is running now
        later = []
        for n in range(4):
            later.append(asyncio.ensure_future(batcher(np.full((1, 2), float(n)))))
            await asyncio.sleep(0.01)
        await asyncio.gather(first, *later)
        return model.batch_sizes

    assert asyncio.run(scenario()) == [1, 4]


def test_a_failing_call_fails_its_batch_only():
    """Two batches in the model at once (in_flight=2): one call fails while the other is still
    running; the failing batch's callers hear why, the other batch's callers get their rows, and
    the batcher serves the next request."""
    both_in = threading.Barrier(2, timeout=5)  # broken unless both calls run together
    failed = threading.Event()
    batches: list[list[float]] = []

    def model(pixels):
        batches.append(sorted(pixels.ravel()))
        if len(batches) > 2:
            return pixels * 10  # the request after them
        both_in.wait()
        if (pixels < 0).any():
            failed.set()
            raise RuntimeError("model crashed")
        assert failed.wait(5)  # still in the model when the other call fails
        time.sleep(0.05)  # and after the batcher has handed the failure out
        return pixels * 10

    async def scenario():
        batcher = AdaptiveBatcher(model, ThreadPoolExecutor(2), max_batch_size=2, in_flight=2)
        # Queued together: the first two fill one batch, the last two the other.
        rows = [np.full((1, 1), value) for value in (-1.0, -2.0, 3.0, 4.0)]
        answers = await asyncio.wait_for(
            asyncio.gather(*(batcher(x) for x in rows), return_exceptions=True), 10
        )
        after = await asyncio.wait_for(batcher(np.full((1, 1), 5.0)), 10)
        return answers, after

    (first, second, third, fourth), after = asyncio.run(scenario())
    assert not both_in.broken, "the two batches were never in the model together"
    assert sorted(batches[:2]) == [[-2.0, -1.0], [3.0, 4.0]]
    assert isinstance(first, RuntimeError) and str(first) == "model crashed"
    assert second is first  # the same failure, told to each caller of that batch
    np.testing.assert_array_equal(third, [[30.0]])
    np.testing.assert_array_equal(fourth, [[40.0]])
    np.testing.assert_array_equal(after, [[50.0]])
