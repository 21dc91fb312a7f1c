"""Payload logging through the real proxy in front of the real predictor, to a real CloudEvents
receiver (support/event_receiver.py): every admitted inference, REST and gRPC, arrives as a
request and a response event in KServe's format, paired by id, carrying the bodies as they
passed; nothing else is logged; the mode is honoured; and a receiver that is slow, silent, down
or failing costs the requests nothing: events are dropped and counted, the queue stays under its
bound, one line says so, and no client sees a 5xx."""

from __future__ import annotations

import json
import re
import socket
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from auth_proxy.payload_events import GRPC_REQUEST_TYPE, GRPC_RESPONSE_TYPE, REQUEST, RESPONSE
from support.clients import (
    INFER,
    MODEL,
    b64,
    grpc_image_request,
    grpc_stub,
    json_request,
    raw_exchange,
    status_of,
)
from support.event_receiver import EventReceiver, metric
from support.images import rgb_png
from support.issuer import issuer_env
from support.servers import free_port, start_proxy

NAMESPACE = "ml-serving"
DROPPED = "auth_proxy_payload_log_dropped_total"
SENT = "auth_proxy_payload_log_sent_total"


@pytest.fixture(scope="module")
def receiver():
    made = EventReceiver()
    yield made
    made.stop()


def logging_proxy(tmp_path_factory, issuer, predictor, url: str, **env: str):
    return start_proxy(
        tmp_path_factory.mktemp("payload-log-proxy"),
        **issuer_env(issuer),
        upstream=predictor,
        PAYLOAD_LOG_URL=url,
        POD_NAMESPACE=NAMESPACE,
        **env,
    )


@pytest.fixture(scope="module")
def all_proxy(issuer, predictor, receiver, tmp_path_factory):
    process = logging_proxy(tmp_path_factory, issuer, predictor, receiver.url)
    yield process
    process.stop()


@pytest.fixture
def fresh(receiver):
    receiver.clear()
    receiver.status, receiver.delay, receiver.hang = 200, 0.0, False
    receiver.posts = 0
    return receiver


class Calls:
    """Inference calls through a proxy, and what each sent and got: {id: (sent, answered)}."""

    def __init__(self, process, token: str):
        self.process = process
        self.token = token
        self.rest = httpx.Client(base_url=process.url, timeout=60)
        self.channel, self.stub = grpc_stub(process.grpc_target)
        self.sent: dict[str, bytes] = {}  # REST: id -> the body sent
        self.answers: dict[str, tuple[bytes, str]] = {}  # REST: body sent -> answer, its type
        self.grpc: list[tuple[pb.ModelInferRequest, pb.ModelInferResponse]] = []

    def post(self, path: str, headers: dict | None = None, **content) -> httpx.Response:
        request = self.rest.build_request(
            "POST",
            path,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
            **content,
        )
        body = request.read()
        response = self.rest.send(request)
        assert response.status_code == 200, response.text
        self.answers[body] = (response.content, response.headers["content-type"])
        return response

    def v2(self, seed: int = 0, **headers: str) -> None:
        self.post(INFER, headers, json=json_request([rgb_png(64, 48, seed)]))

    def infer_grpc(self, seed: int = 0, **metadata: str) -> None:
        request = grpc_image_request([rgb_png(40, 30, seed)], raw=True)
        pairs = [("authorization", f"Bearer {self.token}"), *metadata.items()]
        self.grpc.append((request, self.stub.ModelInfer(request, metadata=pairs, timeout=60)))

    def close(self) -> None:
        self.rest.close()
        self.channel.close()


def paired(events) -> dict[str, dict[str, object]]:
    """{id: {type: event}}, each id's events by type, checking none repeats."""
    pairs: dict[str, dict[str, object]] = defaultdict(dict)
    for event in events:
        assert event["type"] not in pairs[event["id"]], f"two {event['type']} for {event['id']}"
        pairs[event["id"]][event["type"]] = event
    return pairs


def test_every_inference_is_a_request_and_a_response_event_in_kserves_format(
    all_proxy, issuer, fresh
):
    token = issuer.token()
    calls = Calls(all_proxy, token)
    try:
        for seed in range(3):
            calls.v2(seed)
        calls.v2(7, **{"Ce-Id": "client-request-7"})
        calls.post(
            f"/v1/models/{MODEL}:predict",
            json={"instances": [{"image": {"b64": b64(rgb_png(50, 40, 3))}}]},
        )
        calls.post("/upload", files={"file": ("cat.png", rgb_png(60, 40, 4), "image/png")})
        large = json.dumps(json_request([rgb_png(800, 600, 5)])).encode()
        assert len(large) > 1024 * 1024  # streamed by the proxy, and copied piece by piece
        calls.post(INFER, {"Content-Type": "application/json"}, content=large)
        chunked = json.dumps(json_request([rgb_png(800, 600, 6)])).encode()
        pieces = iter([chunked[:999], chunked[999:]])  # no length: sent chunked
        calls.post(INFER, {"Content-Type": "application/json"}, content=pieces)
        for seed in range(4):
            calls.infer_grpc(seed)
        calls.infer_grpc(9, **{"ce-id": "grpc-call-9"})
    finally:
        calls.close()
    rest_calls, grpc_calls = len(calls.answers), len(calls.grpc)
    assert (rest_calls, grpc_calls) == (8, 5)
    events = fresh.wait_for(2 * (rest_calls + grpc_calls))

    pairs = paired(events)
    assert len(pairs) == rest_calls + grpc_calls
    assert all(set(pair) == {REQUEST, RESPONSE} for pair in pairs.values())
    assert {"client-request-7", "grpc-call-9"} <= set(pairs)
    for received in fresh.received:  # binary content mode, KServe's attributes
        event, headers = received.event, received.headers
        assert headers["ce-specversion"] == "1.0" and headers["ce-id"] == event["id"]
        assert headers["content-type"] == event["datacontenttype"]
        assert event["source"] == socket.gethostname()
        assert event["namespace"] == NAMESPACE
        assert event["inferenceservicename"] == "cats-dogs-other"
        assert event["component"] == "predictor"
        assert event["endpoint"] == "" and event["metadata"] == "{}"
        assert event["time"] <= event["recordedtime"]
        assert token not in json.dumps(headers) and token.encode() not in event.data

    rest_pairs = [p for p in pairs.values() if p[REQUEST]["datacontenttype"] != GRPC_REQUEST_TYPE]
    by_body = {pair[REQUEST].data: pair for pair in rest_pairs}
    assert set(by_body) == set(calls.answers)  # each body sent, byte for byte
    for body, (answer, content_type) in calls.answers.items():
        response = by_body[body][RESPONSE]
        assert response.data == answer and response["datacontenttype"] == content_type
        assert by_body[body][REQUEST]["time"] <= response["time"]
    assert by_body[large][REQUEST]["datacontenttype"] == "application/json"
    upload = next(body for body in calls.answers if b'name="file"' in body)
    assert by_body[upload][REQUEST]["datacontenttype"].startswith("multipart/form-data")

    grpc_pairs = [p for p in pairs.values() if p[REQUEST]["datacontenttype"] == GRPC_REQUEST_TYPE]
    assert len(grpc_pairs) == grpc_calls
    sent = {pair[REQUEST].data: pair[RESPONSE] for pair in grpc_pairs}
    for request, response in calls.grpc:
        logged = sent[request.SerializeToString()]
        assert logged["datacontenttype"] == GRPC_RESPONSE_TYPE
        assert pb.ModelInferResponse.FromString(logged.data) == response
    assert pairs["grpc-call-9"][REQUEST].data == calls.grpc[-1][0].SerializeToString()
    assert metric(all_proxy.admin_port, "auth_proxy_payload_log_sent_total") >= len(events)


def test_probes_metadata_documentation_refusals_and_failures_are_not_logged(
    all_proxy, issuer, fresh
):
    bearer = {"Authorization": f"Bearer {issuer.token()}"}
    base = all_proxy.url
    with httpx.Client(base_url=base, timeout=30) as client:
        for path in ("/health", "/v2/health/ready", f"/v2/models/{MODEL}/ready", "/docs"):
            assert client.get(path).status_code == 200, path
        assert client.get(f"/v2/models/{MODEL}", headers=bearer).status_code == 200
        body = json_request([rgb_png(32, 32)])
        assert client.post(INFER, json=body).status_code == 401  # no token
        wrong = {"Authorization": f"Bearer {issuer.token(scope='openid')}"}
        assert client.post(INFER, json=body, headers=wrong).status_code == 403
        assert client.get(INFER, headers=bearer).status_code != 200  # not a POST
    channel, stub = grpc_stub(all_proxy.grpc_target)
    with channel:
        stub.ServerLive(pb.ServerLiveRequest(), timeout=10)
        metadata = [("authorization", f"Bearer {issuer.token()}")]
        stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=metadata, timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(grpc_image_request([rgb_png(8, 8)], raw=True), timeout=10)  # no token
    # A marker inference, logged after all of the above: once it is in, nothing else came.
    calls = Calls(all_proxy, issuer.token())
    try:
        calls.v2(seed=11, **{"Ce-Id": "marker"})
    finally:
        calls.close()
    events = fresh.wait_for(2)
    time.sleep(0.3)
    assert [event["id"] for event in fresh.events] == ["marker", "marker"]
    assert len(events) == 2


def test_an_error_answer_logs_the_request_only_as_kserve_does(all_proxy, issuer, fresh):
    bearer = {"Authorization": f"Bearer {issuer.token()}", "Ce-Id": "bad-image"}
    body = json.dumps(json_request([b"not an image"])).encode()
    answer = httpx.post(
        all_proxy.url + INFER, content=body, headers={**bearer, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    calls = Calls(all_proxy, issuer.token())
    try:
        calls.v2(seed=12, **{"Ce-Id": "after"})
    finally:
        calls.close()
    events = fresh.wait_for(3)
    time.sleep(0.3)
    assert sorted((e["id"], e["type"]) for e in fresh.events) == [
        ("after", REQUEST),
        ("after", RESPONSE),
        ("bad-image", REQUEST),
    ]
    assert next(e for e in events if e["id"] == "bad-image").data == body


@pytest.mark.parametrize("mode", ["request", "response"])
def test_the_mode_is_honoured(mode, issuer, predictor, receiver, tmp_path_factory, fresh):
    process = logging_proxy(
        tmp_path_factory, issuer, predictor, receiver.url, PAYLOAD_LOG_MODE=mode
    )
    calls = Calls(process, issuer.token())
    try:
        for seed in range(3):
            calls.v2(seed)
            calls.infer_grpc(seed)
        events = fresh.wait_for(6)
        time.sleep(0.3)
    finally:
        calls.close()
        process.stop()
    expected = REQUEST if mode == "request" else RESPONSE
    assert [event["type"] for event in fresh.events] == [expected] * 6
    assert len({event["id"] for event in fresh.events}) == 6
    assert len(events) == 6


def test_off_nothing_is_logged_and_nothing_taken_from_the_budget(proxy, issuer):
    """The suite's plain proxy (no PAYLOAD_LOG_URL): no queue, no sender, no line."""
    calls = Calls(proxy, issuer.token())
    try:
        calls.v2()
        calls.infer_grpc()
    finally:
        calls.close()
    assert metric(proxy.admin_port, "auth_proxy_payload_log_queue_capacity_bytes") == 0
    assert metric(proxy.admin_port, "auth_proxy_payload_log_sent_total") == 0
    assert "payload log" not in proxy.log()


def dropping_lines(process) -> list[str]:
    return re.findall(r"^.*payload log: dropping events.*$", process.log(), re.M)


def wait_for_metric(process, name: str, at_least: float, timeout: float = 20, **labels) -> float:
    deadline = time.monotonic() + timeout
    while (value := metric(process.admin_port, name, **labels)) < at_least:
        assert time.monotonic() < deadline, f"{name}{labels} = {value}, wanted {at_least}"
        time.sleep(0.1)
    return value


QUEUE_BYTES = 64 * 1024


def test_a_receiver_that_stops_answering_costs_the_requests_nothing(
    proxy, issuer, predictor, receiver, tmp_path_factory, fresh
):
    """The receiver takes the connections and never answers: the senders wait (30 s timeout),
    the queue fills, and from then on every event is dropped and counted. Requests answer as
    fast as through the proxy without a log (interleaved, same predictor), the queue's bytes
    never pass their bound, and one line says dropping started."""
    fresh.hang = True
    process = logging_proxy(
        tmp_path_factory,
        issuer,
        predictor,
        receiver.url,
        PAYLOAD_LOG_QUEUE_BYTES=str(QUEUE_BYTES),
        PAYLOAD_LOG_QUEUE_EVENTS="16",
        PAYLOAD_LOG_TIMEOUT_SECONDS="30",
    )
    held: list[float] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.is_set():
            held.append(metric(process.admin_port, "auth_proxy_payload_log_queue_bytes"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    timings: dict[str, list[float]] = {"off": [], "logging": []}
    try:
        sampler.start()
        plain, logging = Calls(proxy, issuer.token()), Calls(process, issuer.token())
        try:
            for seed in range(40):
                for name, calls in (("off", plain), ("logging", logging)):
                    started = time.perf_counter()
                    calls.v2(seed)
                    calls.infer_grpc(seed)
                    timings[name].append(time.perf_counter() - started)
        finally:
            plain.close()
            logging.close()
        stop_sampling.set()
        sampler.join()
        dropped = metric(process.admin_port, DROPPED, reason="queue_full")
        final_held = metric(process.admin_port, "auth_proxy_payload_log_queue_bytes")
        lines = dropping_lines(process)
    finally:
        stop_sampling.set()
        process.stop()
    off, on = statistics.median(timings["off"]), statistics.median(timings["logging"])
    assert on < 1.5 * off + 0.02, f"median {on * 1000:.1f} ms logging, {off * 1000:.1f} ms off"
    assert max(timings["logging"]) < 5  # never waited for a sender (they wait 30 s)
    assert fresh.posts >= 1 and not fresh.received
    assert dropped >= 160 - 16 - 4  # 160 events: at most 16 queued and 4 being sent
    assert held and max(held) <= QUEUE_BYTES and final_held <= QUEUE_BYTES
    assert len(lines) == 1 and "queue_full" in lines[0]


def test_a_receiver_down_is_counted_in_one_line_and_never_a_5xx(
    issuer, predictor, tmp_path_factory
):
    nobody = f"http://127.0.0.1:{free_port()}/events"
    process = logging_proxy(tmp_path_factory, issuer, predictor, nobody)
    calls = Calls(process, issuer.token())
    try:
        for seed in range(6):
            calls.v2(seed)  # asserts 200
            calls.infer_grpc(seed)
        wait_for_metric(process, DROPPED, 24, reason="send_failed")
        assert metric(process.admin_port, "auth_proxy_payload_log_sent_total") == 0
        assert metric(process.admin_port, "auth_proxy_payload_log_queue_bytes") == 0
        log = process.log()
    finally:
        calls.close()
        process.stop()
    assert len(dropping_lines(process)) == 1
    assert "dropping events (send_failed)" in log
    assert "Traceback" not in log and "/events" not in log  # the path is not logged


def test_a_receiver_answering_500_is_counted_and_the_client_never_sees_it(
    issuer, predictor, receiver, tmp_path_factory, fresh
):
    fresh.status = 500
    process = logging_proxy(tmp_path_factory, issuer, predictor, receiver.url)
    calls = Calls(process, issuer.token())
    try:
        with ThreadPoolExecutor(4) as pool:  # at once: the senders are busy too
            list(pool.map(calls.v2, range(8)))
        wait_for_metric(process, DROPPED, 16, reason="send_failed")
        assert fresh.posts == 16
        fresh.status = 200
        calls.v2(seed=20, **{"Ce-Id": "recovered"})
        fresh.wait_for(2)
        assert metric(process.admin_port, DROPPED, reason="send_failed") == 16
    finally:
        calls.close()
        process.stop()
    assert [e["id"] for e in fresh.events] == ["recovered", "recovered"]
    assert len(dropping_lines(process)) == 1


BODY_LIMIT = 64 * 1024


def test_a_body_abandoned_or_over_the_limit_is_no_event_and_gives_its_bytes_back(
    issuer, predictor, receiver, tmp_path_factory, fresh
):
    """A client with a valid token streams a body (chunked, copied into the queue as it
    passes) and leaves halfway, or streams more than MAX_BODY_BYTES (413): neither is logged,
    neither is counted as dropped (a refusal is not an event), and the queue holds nothing
    after them; the next call is logged whole."""
    process = logging_proxy(
        tmp_path_factory,
        issuer,
        predictor,
        receiver.url,
        MAX_BODY_BYTES=str(BODY_LIMIT),
        PAYLOAD_LOG_QUEUE_BYTES=str(16 * BODY_LIMIT),
    )
    try:
        head = (
            f"POST {INFER} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {issuer.token()}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        ).encode()
        piece = b"x" * 8192
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        # Half a body, then gone: the copy is never finished.
        with socket.create_connection(("127.0.0.1", process.http_port), timeout=10) as sock:
            sock.sendall(head + b"Ce-Id: abandoned\r\n\r\n" + chunk * 4)
            time.sleep(0.3)
        # Twice the limit, whole: refused as it passes the limit.
        over = head + b"Ce-Id: too-large\r\n\r\n" + chunk * (2 * BODY_LIMIT // len(piece))
        assert status_of(raw_exchange(process.http_port, over + b"0\r\n\r\n")) == 413
        calls = Calls(process, issuer.token())
        try:
            calls.v2(seed=13, **{"Ce-Id": "after"})
        finally:
            calls.close()
        fresh.wait_for(2)
        time.sleep(0.3)
        assert sorted(event["id"] for event in fresh.events) == ["after", "after"]
        assert metric(process.admin_port, "auth_proxy_payload_log_queue_bytes") == 0
        for reason in ("queue_full", "too_large", "send_failed"):
            assert metric(process.admin_port, DROPPED, reason=reason) == 0, reason
    finally:
        process.stop()


def test_a_body_larger_than_the_queue_is_not_logged_and_is_counted(
    issuer, predictor, receiver, tmp_path_factory, fresh
):
    process = logging_proxy(
        tmp_path_factory, issuer, predictor, receiver.url, PAYLOAD_LOG_QUEUE_BYTES=str(QUEUE_BYTES)
    )
    calls = Calls(process, issuer.token())
    try:
        big = json.dumps(json_request([rgb_png(300, 200)])).encode()
        assert len(big) > QUEUE_BYTES
        calls.post(INFER, {"Content-Type": "application/json", "Ce-Id": "big"}, content=big)
        fresh.wait_for(1)  # its answer is small: logged
        assert wait_for_metric(process, DROPPED, 1, reason="too_large") == 1
    finally:
        calls.close()
        process.stop()
    assert [(e["id"], e["type"]) for e in fresh.events] == [("big", RESPONSE)]


def test_a_receiver_that_redirects_is_not_followed_and_the_event_is_counted_as_failed(
    issuer, predictor, tmp_path_factory
):
    """A 307 would have the proxy POST the photos wherever its Location says (another host,
    or http after https): the operator named one receiver, and only it gets them."""
    elsewhere = EventReceiver()
    redirecting = EventReceiver(redirect=elsewhere.url)
    process = logging_proxy(tmp_path_factory, issuer, predictor, redirecting.url)
    calls = Calls(process, issuer.token())
    try:
        calls.v2(seed=3)
        wait_for_metric(process, DROPPED, 2, reason="send_failed")
        assert redirecting.posts == 2
        time.sleep(0.5)
        assert elsewhere.posts == 0
        assert metric(process.admin_port, SENT) == 0
    finally:
        calls.close()
        process.stop()
        redirecting.stop()
        elsewhere.stop()
