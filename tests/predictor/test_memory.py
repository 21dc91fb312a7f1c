"""The memory budgets of both processes, their sizing from the cgroup limit, and what the
predictor charges: JSON bodies bounded before parsing, decodes costed from the header, the
accepted formats, and large requests cut into batches the runtime was measured at."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import numpy as np
import orjson
import pytest
from PIL import Image

from auth_proxy import budget as proxy_budget
from predictor import imaging, memory
from predictor.batching import AdaptiveBatcher
from predictor.errors import BadRequest, OverBudget, TooLarge
from predictor.protocol import codec

pytestmark = pytest.mark.unit

MIB = 1024 * 1024


# -- sizing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "268435456\n"}, 268435456),
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "2147483648\n"}, 2147483648),
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),  # v1's "no limit"
        ({}, None),
    ],
)
def test_the_memory_limit_is_read_from_cgroup_v2_or_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert memory.memory_limit(tmp_path) == expected
    assert proxy_budget.memory_limit(tmp_path) == expected


def test_budgets_follow_the_deployments_limits():
    assert proxy_budget.default_budget(256 * MIB) == 144 * MIB
    assert proxy_budget.largest_grpc_message(144 * MIB, 64 * MIB) == 24 * MIB
    assert proxy_budget.largest_grpc_message(144 * MIB, 8 * MIB) == 8 * MIB
    assert proxy_budget.default_budget(None) == proxy_budget.NO_LIMIT_BUDGET
    assert proxy_budget.default_budget(32 * MIB) == proxy_budget.SMALLEST_BUDGET
    # The predictor: three quarters of what the limit leaves above the loaded model.
    assert memory.sized_budget(2048 * MIB, 400 * MIB) == 1236 * MIB
    assert memory.sized_budget(2048 * MIB, 2000 * MIB) == memory.SMALLEST_BUDGET
    assert memory.sized_budget(None, 400 * MIB) == memory.NO_LIMIT_BUDGET


# -- the proxy's budget (one event loop) ---------------------------------------------------------


def test_the_proxys_budget_refuses_what_does_not_fit_and_takes_back_everything():
    async def scenario():
        budget = proxy_budget.ByteBudget(100)
        first = budget.try_take(60)
        assert first is not None and budget.held == 60
        assert budget.try_take(50) is None  # does not fit: refused at once
        with budget.try_take(40) as second:
            assert budget.held == 100
            assert second.resize(10) and budget.held == 70  # gives back what is over
            assert not second.resize(50) and budget.held == 70  # cannot grow past it
            assert second.resize(40) and budget.held == 100
        first.release()
        first.release()  # once only
        assert budget.held == 0

    asyncio.run(scenario())


def test_a_waiter_is_served_in_order_and_one_that_gives_up_holds_nothing():
    async def scenario():
        budget = proxy_budget.ByteBudget(100)
        big = budget.try_take(90)
        waiting = asyncio.ensure_future(budget.take(50, patience=5))
        await asyncio.sleep(0.01)
        assert await budget.take(5, patience=0.05) is None  # waiters do not overtake
        fits = budget.try_take(5)  # but what fits is not refused for a waiting read
        assert fits is not None and budget.try_take(0) is not None  # nothing always fits
        fits.release()
        assert await budget.take(200, patience=5) is None  # more than the whole budget
        assert await budget.take(20, patience=0.05) is None  # timed out behind the first
        big.release()
        hold = await waiting
        assert hold is not None and budget.held == 50
        # A waiter cancelled (its client left) takes nothing with it.
        stuck = asyncio.ensure_future(budget.take(80, patience=5))
        await asyncio.sleep(0.01)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        hold.release()
        assert budget.held == 0 and not budget._waiting

    asyncio.run(scenario())


# -- the predictor's budget (the event loop and the decoding threads) ----------------------------


def test_the_predictors_budget_refuses_at_once_or_lets_a_decode_wait():
    budget = memory.MemoryBudget(100)
    held = budget.take(80)
    with pytest.raises(OverBudget) as refused:
        budget.take(30)
    assert refused.value.http_status == 429 and refused.value.headers == {"Retry-After": "1"}
    started = time.monotonic()
    with pytest.raises(OverBudget):
        budget.wait_for(30, patience=0.1)
    assert time.monotonic() - started >= 0.1
    threading.Timer(0.1, held.release).start()
    with budget.wait_for(30, patience=5):  # freed by the other thread meanwhile
        assert budget.held == 30
    with pytest.raises(OverBudget):
        budget.wait_for(101, patience=5)  # never fits: refused without waiting
    assert budget.held == 0


# -- JSON bodies --------------------------------------------------------------------------------


def pixels_body(values: list, shape: list[int]) -> bytes:
    tensor = {"name": "pixels", "shape": shape, "datatype": "FP32", "data": values}
    return orjson.dumps({"inputs": [tensor]})


def test_a_json_body_is_bounded_before_it_is_parsed():
    zeros = b'{"inputs":[{"name":"pixels","data":[' + b"0," * 5_000_000 + b"0]}]}"
    with pytest.raises(TooLarge, match="more than 32 images"):
        codec.json_cost(zeros, None, max_images=32)
    one_image = pixels_body([0.5] * codec.PIXEL_VALUES, [1, 224, 224, 3])
    assert codec.json_cost(one_image, None, max_images=1) >= codec.PIXEL_VALUES * 64
    # With the binary extension only the JSON header counts: commas in an image are not values.
    binary = b'{"inputs":[]}' + b"," * 1_000_000
    assert codec.json_cost(binary, "13", max_images=1) == codec.JSON_BYTES_PER_VALUE


def test_json_pixels_are_checked_against_their_shape_and_become_float32():
    values = np.random.default_rng(0).uniform(-120, 150, (2, 224, 224, 3)).astype(np.float32)
    nested = pixels_body(values.tolist(), [2, 224, 224, 3])
    request = codec.infer_request_from_rest(nested, None, "m")
    batch = codec.batch_from_infer_request(request, max_images=32)
    assert batch.pixels is not None and np.array_equal(batch.pixels, values)
    short = pixels_body(values.reshape(-1).tolist()[:-1], [2, 224, 224, 3])
    with pytest.raises(BadRequest, match="declares shape"):
        codec.infer_request_from_rest(short, None, "m")
    words = pixels_body(["a"] * codec.PIXEL_VALUES, [1, 224, 224, 3])
    with pytest.raises(BadRequest, match="numbers only"):
        codec.infer_request_from_rest(words, None, "m")


# -- decoding ----------------------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP"])
def test_the_documented_formats_are_decoded(fmt):
    image = imaging.open_image(encoded(Image.new("RGB", (30, 20)), fmt), imaging.ImageLimits())
    assert imaging.decode_opened(image).shape == (224, 224, 3)


@pytest.mark.parametrize(("mode", "fmt"), [("F", "TIFF"), ("RGB", "TIFF"), ("RGB", "ICO")])
def test_other_formats_pillow_opens_are_refused_by_name(mode, fmt):
    data = encoded(Image.new(mode, (32, 32)), fmt)
    with pytest.raises(imaging.ImageProblem, match="JPEG, PNG, GIF, BMP or WebP"):
        imaging.open_image(data, imaging.ImageLimits())


def test_a_decode_is_costed_from_the_header_before_a_pixel_is_decoded():
    data = encoded(Image.new("RGBA", (4000, 3000)), "PNG")
    image = imaging.open_image(data, imaging.ImageLimits())
    assert image._im is None  # not decoded yet: only the header was read
    assert imaging.decode_cost(image) == 12_000_000 * (4 + 1 + 4) + MIB  # stored, RGB copy


# -- batches -----------------------------------------------------------------------------------


def test_a_request_larger_than_the_batch_size_reaches_the_model_in_parts():
    sizes: list[int] = []

    def run(pixels: np.ndarray) -> np.ndarray:
        sizes.append(len(pixels))
        return pixels[:, 0, 0, :].copy()

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            batcher = AdaptiveBatcher(run, pool, max_batch_size=4)
            pixels = np.arange(11, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3))
            rows = await batcher(pixels.astype(np.float32))
        assert np.array_equal(rows[:, 0], np.arange(11))  # in order, each its own row
        assert max(sizes) <= 4 and sum(sizes) == 11

    asyncio.run(scenario())


def test_pixels_sent_in_binary_beside_a_json_header_are_left_as_sent():
    values = np.ones((1, 224, 224, 3), dtype="<f4")
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [1, 224, 224, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": values.nbytes},
                }
            ]
        }
    )
    request = codec.infer_request_from_rest(header + values.tobytes(), str(len(header)), "m")
    batch = codec.batch_from_infer_request(request, max_images=32)
    assert batch.pixels is not None and np.array_equal(batch.pixels, values)
