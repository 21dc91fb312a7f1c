"""The served model batches concurrent requests (the batcher alone: test_batcher.py)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from support.clients import INFER, json_request, values_of
from support.images import rgb_jpeg


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
