"""Concurrent requests share model calls, each gets its own rows back, and a bad image in one
request fails nobody else's."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from predictor.batching import AdaptiveBatcher

from ..clients import INFER, json_request, values_of
from ..images import rgb_jpeg


def slow_row_sums(pixels: np.ndarray) -> np.ndarray:
    """A stand-in model that takes 50 ms per call and answers each row with its own sum."""
    time.sleep(0.05)
    return pixels.reshape(len(pixels), -1).sum(axis=1, keepdims=True)


def test_concurrent_callers_share_calls_and_get_their_own_rows():
    async def scenario():
        batcher = AdaptiveBatcher(slow_row_sums, ThreadPoolExecutor(1), max_batch_size=8)
        inputs = [np.full((1 + n % 3, 2), float(n)) for n in range(12)]
        answers = await asyncio.gather(*(batcher(x) for x in inputs))
        return batcher, inputs, answers

    batcher, inputs, answers = asyncio.run(scenario())
    for x, answer in zip(inputs, answers, strict=True):
        np.testing.assert_array_equal(answer, x.sum(axis=1, keepdims=True))
    assert sum(batcher.batch_sizes) == sum(len(x) for x in inputs)
    assert max(batcher.batch_sizes) <= 8
    assert len(batcher.batch_sizes) < len(inputs)  # calls were shared


def test_a_lone_request_waits_at_most_max_wait():
    async def scenario():
        batcher = AdaptiveBatcher(lambda p: p, ThreadPoolExecutor(1), max_wait=0.002)
        started = time.perf_counter()
        await batcher(np.ones((1, 2)))
        return time.perf_counter() - started

    assert asyncio.run(scenario()) < 0.05


def test_a_failing_call_fails_its_batch_only():
    calls = []

    def fails_once(pixels):
        calls.append(len(pixels))
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return pixels

    async def scenario():
        batcher = AdaptiveBatcher(fails_once, ThreadPoolExecutor(1))
        first = await asyncio.gather(batcher(np.ones((1, 1))), return_exceptions=True)
        second = await batcher(np.ones((1, 1)))
        return first, second

    first, second = asyncio.run(scenario())
    assert isinstance(first[0], RuntimeError)
    np.testing.assert_array_equal(second, np.ones((1, 1)))


def test_the_served_model_batches_concurrent_requests(predictor):
    photos = [rgb_jpeg(seed=n) for n in range(16)]
    alone = [
        values_of(httpx.post(predictor.url + INFER, json=json_request([p])).json())[1][0]
        for p in photos
    ]

    def batched_calls() -> float:
        metrics = httpx.get(predictor.url + "/metrics").text
        above_one = re.search(r'predictor_model_batch_size_bucket\{le="1.0"\} (\S+)', metrics)
        total = re.search(r"predictor_model_batch_size_count (\S+)", metrics)
        return float(total.group(1)) - float(above_one.group(1))

    before = batched_calls()
    bad = b"not an image"
    with ThreadPoolExecutor(17) as pool:
        futures = [
            pool.submit(httpx.post, predictor.url + INFER, json=json_request([p]), timeout=60)
            for p in photos
        ]
        refused = pool.submit(httpx.post, predictor.url + INFER, json=json_request([bad]))
        answers = [f.result() for f in futures]
    assert refused.result().status_code == 400
    for answer, expected in zip(answers, alone, strict=True):
        assert answer.status_code == 200
        np.testing.assert_allclose(values_of(answer.json())[1][0], expected, atol=1e-6, rtol=0)
    assert batched_calls() > before, "no model call held more than one image"
