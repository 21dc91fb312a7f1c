"""The pod at its memory limits, against a client holding a valid token.

The real proxy in front of the real predictor on the demo model, each given the memory budget
its container's limit gives it in the Deployment (proxy 256 MiB, predictor 2 GiB: the budgets
`auth_proxy.budget.default_budget` and `predictor.memory.sized_budget` compute from cgroup
`memory.max`, which a test process does not have). Concurrent largest requests of every kind
through the proxy: every call answered with 200, 413 or 429 / RESOURCE_EXHAUSTED, each
process's peak resident memory under its limit, and memory back near where it was after."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from PIL import Image

from predictor import default_model
from predictor.memory import sized_budget
from support.clients import INFER, MODEL, binary_body
from support.images import rgb_jpeg
from support.issuer import Issuer, issuer_env
from support.servers import start_predictor, start_proxy, wait_ready

MIB = 1024 * 1024
PROXY_LIMIT = 256 * MIB
PREDICTOR_LIMIT = 2048 * MIB
# The demo model served warm holds ~400 MiB: the budget a 2 GiB container then gives it.
PREDICTOR_BUDGET = sized_budget(PREDICTOR_LIMIT, 400 * MIB)
SERVICE = "/inference.GRPCInferenceService/"


def rss_mib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no {field} for {pid}")


def metric(page: str, name: str) -> float:
    """The value of an unlabelled sample on a Prometheus text page."""
    for line in page.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} on the page")


def forty_megapixels(fmt: str, seed: int = 0, **options) -> bytes:
    """An image of 40 million pixels (the predictor's limit) that compresses to little: an RGBA
    PNG (360 MB to decode), a lossless WebP (680 MB: libwebp's canvases), a progressive JPEG
    (440 MB: every DCT coefficient until the last scan)."""
    mode = "RGBA" if fmt == "PNG" else "RGB"
    image = Image.new(mode, (8000, 5000), (seed * 40 % 256, 120, 200, 255)[: len(mode)])
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def forty_megapixel_png(seed: int) -> bytes:
    return forty_megapixels("PNG", seed, compress_level=1)


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    """The proxy and the predictor (warm start, as a pod restarts) with their pods' budgets."""
    from auth_proxy.budget import default_budget

    logs = tmp_path_factory.mktemp("pod")
    settings = {
        "MEMORY_BUDGET_BYTES": str(PREDICTOR_BUDGET),
        "DECODE_THREADS": "8",
        "MODEL_CACHE_DIR": str(logs / "cache"),
    }
    first = wait_ready(start_predictor(default_model.PATH, logs, **settings))
    first.stop()  # the compiled-model cache now holds this load: the next start is warm
    predictor = wait_ready(start_predictor(default_model.PATH, logs, **settings))
    issuer = Issuer()
    proxy = start_proxy(
        logs,
        **issuer_env(issuer),
        upstream=predictor,
        MEMORY_BUDGET_BYTES=str(default_budget(PROXY_LIMIT)),
    )
    try:
        yield predictor, proxy, issuer
    finally:
        proxy.stop()
        predictor.stop()
        issuer.down()


def test_the_largest_requests_of_every_kind_at_once_stay_within_the_pods_limits(pod):
    predictor, proxy, issuer = pod
    token = issuer.token()
    bearer = {"Authorization": f"Bearer {token}"}
    metadata = [("authorization", f"Bearer {token}")]
    before = {"proxy": rss_mib(proxy.popen.pid), "predictor": rss_mib(predictor.popen.pid)}

    pixels = np.zeros((32, 224, 224, 3), dtype="<f4").tobytes()  # 19.3 MB: 32 images
    grpc_message = pb.ModelInferRequest(
        model_name=MODEL,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="pixels", datatype="FP32", shape=[32, 224, 224, 3]
            )
        ],
        raw_input_contents=[pixels],
    ).SerializeToString()
    huge_message = bytes(48 * MIB)  # over the largest message the proxy reads: refused
    costly = [
        forty_megapixel_png(0),
        forty_megapixels("WEBP", lossless=True),
        forty_megapixels("JPEG", progressive=True, quality=90),
    ]
    png_body, png_headers = binary_body(costly * 2 + costly[:2], length_prefixed=True)
    rng = np.random.default_rng(0)
    json_pixels = rng.uniform(-120, 150, (8, 224, 224, 3)).round(2).astype(np.float32)
    json_body = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [8, 224, 224, 3],
                    "datatype": "FP32",
                    "data": json_pixels.reshape(-1).tolist(),
                }
            ]
        }
    ).encode()  # ~23 MB of JSON numbers
    zeros_body = b'{"inputs":[{"name":"pixels","shape":[1,224,224,3],"datatype":"FP32","data":['
    zeros_body += b"0," * (30 * MIB) + b"0]}]}"  # 60 MiB of [0,0,...]
    lists_body = b'{"instances":[' + b"[]," * (20 * MIB) + b"[]]}"  # V1: 60 MiB of [[],[],...]

    answers: list[str] = []
    lock = threading.Lock()

    def grpc_call(message: bytes) -> None:
        options = [("grpc.max_send_message_length", 128 * MIB)]
        with grpc.insecure_channel(proxy.grpc_target, options=options) as channel:
            try:
                channel.unary_unary(SERVICE + "ModelInfer")(message, metadata=metadata, timeout=120)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
        with lock:
            answers.append(f"grpc {code}")

    def rest_call(body: bytes, headers: dict) -> None:
        with httpx.Client(timeout=120) as client:
            answer = client.post(proxy.url + INFER, content=body, headers={**bearer, **headers})
        with lock:
            answers.append(f"rest {answer.status_code}")
        if answer.status_code == 429:
            assert answer.headers["Retry-After"].isdigit()

    def v1_call(body: bytes) -> None:
        with httpx.Client(timeout=120) as client:
            answer = client.post(
                f"{proxy.url}/v1/models/{MODEL}:predict",
                content=body,
                headers={**bearer, "Content-Type": "application/json"},
            )
        with lock:
            answers.append(f"rest {answer.status_code}")

    peaks = {"proxy": 0, "predictor": 0}
    done = threading.Event()

    def watch() -> None:  # VmHWM covers the whole life; this samples the storm itself
        while not done.wait(0.05):
            peaks["proxy"] = max(peaks["proxy"], rss_mib(proxy.popen.pid))
            peaks["predictor"] = max(peaks["predictor"], rss_mib(predictor.popen.pid))

    watcher = threading.Thread(target=watch)
    watcher.start()
    # Two bursts: gRPC messages alone fill the proxy's budget, and the REST kinds must reach
    # the predictor too (the decoding, the JSON parsing).
    bursts = (
        [(grpc_call, (grpc_message,))] * 6 + [(grpc_call, (huge_message,))] * 2,
        [(rest_call, (png_body, png_headers))] * 4
        + [(rest_call, (json_body, {"Content-Type": "application/json"}))] * 2
        + [(rest_call, (zeros_body, {"Content-Type": "application/json"}))]
        + [(v1_call, (lists_body,))],
    )
    try:
        for burst in bursts:
            with ThreadPoolExecutor(len(burst)) as pool:
                for future in [pool.submit(job, *args) for job, args in burst]:
                    future.result()
            print(f"after a burst: sampled peaks (MiB) {peaks}")
    finally:
        done.set()
        watcher.join()
    time.sleep(3)  # what the last requests freed goes back to the system (after 2 s idle)
    after = {"proxy": rss_mib(proxy.popen.pid), "predictor": rss_mib(predictor.popen.pid)}
    high = {"proxy": rss_mib(proxy.popen.pid, "VmHWM")}
    high["predictor"] = rss_mib(predictor.popen.pid, "VmHWM")
    print(f"answers: {sorted(answers)}")
    print(f"RSS MiB before {before}, sampled peak {peaks}, VmHWM {high}, after {after}")

    assert len(answers) == sum(len(burst) for burst in bursts)
    allowed = {"grpc OK", "grpc RESOURCE_EXHAUSTED", "rest 200", "rest 413", "rest 429"}
    assert set(answers) <= allowed, sorted(answers)
    assert answers.count("grpc RESOURCE_EXHAUSTED") >= 2  # the 48 MiB messages at least
    # 60 MiB of zeros, of empty V1 lists: more values than 32 images have (413), unless the
    # budget refused them first (429)
    assert answers.count("rest 413") + answers.count("rest 429") >= 2
    assert high["proxy"] * MIB <= PROXY_LIMIT
    assert high["predictor"] * MIB <= PREDICTOR_LIMIT
    # Memory comes back: what the storm took is returned, not kept for the next one.
    assert after["proxy"] - before["proxy"] < 48
    assert after["predictor"] - before["predictor"] < 300
    # Something was served: the budgets refuse what does not fit, not everything; and once
    # the storm is over, an ordinary request is served as before it.
    assert "grpc OK" in answers
    photo, headers = binary_body([rgb_jpeg()], length_prefixed=True)
    answer = httpx.post(proxy.url + INFER, content=photo, headers={**bearer, **headers})
    assert answer.status_code == 200, answer.text


def test_what_does_not_fit_the_budget_is_refused_at_once_and_counted(tmp_path, pod):
    """A budget too small for one body: 429 with Retry-After from the proxy, counted in its
    metrics; the same from the predictor itself, counted in its own."""
    predictor, _, issuer = pod
    proxy = start_proxy(
        tmp_path, **issuer_env(issuer), upstream=predictor, MEMORY_BUDGET_BYTES=str(MIB)
    )
    try:
        body, headers = binary_body([bytes(2 * MIB)], length_prefixed=True)
        headers["Authorization"] = f"Bearer {issuer.token()}"
        answer = httpx.post(proxy.url + INFER, content=body, headers=headers, timeout=30)
        assert answer.status_code == 429, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert "memory budget" in answer.json()["error_description"]
        metrics = httpx.get(f"http://127.0.0.1:{proxy.admin_port}/metrics", timeout=10).text
        assert 'auth_proxy_refusals_total{door="rest",reason="over_budget"} 1.0' in metrics
        assert metric(metrics, "auth_proxy_memory_budget_bytes") == MIB
        assert metric(metrics, "auth_proxy_memory_budget_held_bytes") == 0  # given back

        # A 1 MiB budget holds two reads of 174 KB messages at most (three copies each):
        # a larger message is refused as gRPC refuses any message over its limit.
        channel = grpc.insecure_channel(proxy.grpc_target)
        with channel, pytest.raises(grpc.RpcError) as error:
            metadata = [("authorization", f"Bearer {issuer.token()}")]
            channel.unary_unary(SERVICE + "ModelInfer")(bytes(MIB), metadata=metadata, timeout=30)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        proxy.stop()

    small = start_predictor(default_model.PATH, tmp_path, MEMORY_BUDGET_BYTES=str(2 * MIB))
    try:
        wait_ready(small)
        png = forty_megapixel_png(0)
        body, headers = binary_body([png], length_prefixed=True)
        answer = httpx.post(small.url + INFER, content=body, headers=headers, timeout=30)
        assert answer.status_code == 413, answer.text  # one decode needs more than the budget
        assert "memory budget" in answer.json()["error"]
        body, headers = binary_body([bytes(2 * MIB)], length_prefixed=True)
        answer = httpx.post(small.url + INFER, content=body, headers=headers, timeout=30)
        assert answer.status_code == 429, answer.text  # the body itself does not fit
        assert answer.headers["Retry-After"] == "1"
        metrics = httpx.get(small.url + "/metrics", timeout=10).text
        assert metric(metrics, "predictor_memory_budget_refusals_total") == 1
        assert metric(metrics, "predictor_memory_budget_held_bytes") == 0
    finally:
        small.stop()


def test_an_unlisted_format_is_refused_by_name(pod):
    """TIFF (float pixels, many codecs) is not among the formats a request may send."""
    predictor, _, _ = pod
    out = io.BytesIO()
    Image.new("F", (64, 64)).save(out, "TIFF")
    body, headers = binary_body([out.getvalue()], length_prefixed=True)
    answer = httpx.post(predictor.url + INFER, content=body, headers=headers, timeout=30)
    assert answer.status_code == 400
    assert "JPEG, PNG, GIF, BMP or WebP" in answer.json()["error"]


def test_a_refused_call_holds_nothing_afterwards(pod):
    """Refused gRPC calls one after another: each used to stay in the proxy (the status kept
    the traceback, the traceback the message) until a full garbage collection, 48 MiB a call."""
    _, proxy, issuer = pod
    metadata = [("authorization", f"Bearer {issuer.token()}")]
    options = [("grpc.max_send_message_length", 64 * MIB)]
    before = rss_mib(proxy.popen.pid)
    with grpc.insecure_channel(proxy.grpc_target, options=options) as channel:
        for _ in range(6):
            with pytest.raises(grpc.RpcError) as error:
                channel.unary_unary(SERVICE + "ModelInfer")(
                    bytes(20 * MIB), metadata=metadata, timeout=60
                )
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # not protobuf
    time.sleep(1)
    after = rss_mib(proxy.popen.pid)
    print(f"proxy RSS {before} MiB before six refused 20 MiB calls, {after} after")
    assert after - before < 24


def test_calls_cancelled_while_they_wait_read_or_are_forwarded_give_everything_back(pod):
    """Deadlines that pass at every stage of a call: whatever each took of the proxy's budget
    comes back (a call cancelled by gRPC used to keep its room to read for good)."""
    _, proxy, issuer = pod
    metadata = [("authorization", f"Bearer {issuer.token()}")]
    options = [("grpc.max_send_message_length", 64 * MIB)]
    message = bytes(8 * MIB)

    def call(deadline: float) -> str:
        with grpc.insecure_channel(proxy.grpc_target, options=options) as channel:
            try:
                channel.unary_unary(SERVICE + "ModelInfer")(
                    message, metadata=metadata, timeout=deadline
                )
            except grpc.RpcError as error:
                return error.code().name
        return "OK"

    deadlines = [0.001 * (1 + n % 40) for n in range(80)]
    with ThreadPoolExecutor(8) as pool:
        codes = set(pool.map(call, deadlines))
    assert codes <= {"DEADLINE_EXCEEDED", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "CANCELLED"}
    time.sleep(1)
    page = httpx.get(f"http://127.0.0.1:{proxy.admin_port}/metrics", timeout=10).text
    assert metric(page, "auth_proxy_memory_budget_held_bytes") == 0
