"""What a rolling update and a long day do to the pod's two processes: SIGTERM while requests
are in flight answers every one of them and both processes exit 0; a predictor that dies makes
the pod's readiness probe fail within 2 s; memory stays flat under sustained traffic (mixed with
anonymous refusals and abandoned connections). A pair of its own for each test, since they end
or load it."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import socket
import time

import httpx
import pytest

from support.clients import MODEL, grpc_image_request, grpc_stub, grpc_values, json_request
from support.images import CAT
from support.issuer import issuer_env
from support.servers import start_predictor, start_proxy, wait_ready

READY = f"/v2/models/{MODEL}/ready"
INFER = f"/v2/models/{MODEL}/infer"
# SOAK_SECONDS=100 reproduces the soak; the suite runs a shorter one.
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))


@pytest.fixture
def pair(model_file, issuer, tmp_path):
    predictor = wait_ready(start_predictor(model_file, tmp_path, MAX_BATCH_SIZE="8"))
    proxy = start_proxy(
        tmp_path,
        **issuer_env(issuer),
        upstream=predictor,
    )
    yield predictor, proxy
    proxy.stop()
    predictor.stop()


def in_flight(proxy, door: str) -> float:
    page = httpx.get(f"http://127.0.0.1:{proxy.admin_port}/metrics").text
    found = re.search(rf'auth_proxy_requests_in_flight{{door="{door}"}} (\S+)', page)
    return float(found.group(1)) if found else 0.0


def test_sigterm_answers_every_request_in_flight_and_both_exit_0(pair, issuer):
    """As the kubelet ends the pod in a rolling update, at its worst: both containers get
    SIGTERM at once (no preStop pause) while most of 12 REST and 4 gRPC inferences (at least
    12 of them) are in flight. Sixteen photos each: with fewer, on a busy machine the first
    requests were answered before the last had arrived."""
    predictor, proxy = pair
    cat = CAT.read_bytes()
    token = issuer.token()
    body = json_request([cat] * 16)

    def rest() -> int:
        answer = httpx.post(
            proxy.url + INFER, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        return answer.status_code

    def grpc_call() -> str:
        channel, stub = grpc_stub(proxy.grpc_target)
        with channel:
            answer = stub.ModelInfer(
                grpc_image_request([cat] * 16, raw=True),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=60,
            )
            labels, _ = grpc_values(answer)
            return "OK" if len(labels) == 16 else f"wrong: {labels}"

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        calls = [pool.submit(rest) for _ in range(12)] + [pool.submit(grpc_call) for _ in range(4)]
        deadline = time.monotonic() + 10
        while (flying := in_flight(proxy, "rest") + in_flight(proxy, "grpc")) < 12:
            assert time.monotonic() < deadline, "the requests never were in flight together"
            time.sleep(0.01)
        # Counted in flight at the proxy once admitted, the last ones may not have reached the
        # predictor yet: one the predictor has not accepted when it stops listening is a 502
        # (seen once in 1,200 tests on a loaded machine). Each takes seconds to answer here.
        time.sleep(0.3)
        for process in (proxy, predictor):
            process.popen.send_signal(signal.SIGTERM)
        outcomes = [call.result(timeout=60) for call in calls]
    assert outcomes == [200] * 12 + ["OK"] * 4, f"{flying:g} in flight at SIGTERM"
    assert proxy.popen.wait(30) == 0, proxy.log()[-2000:]
    assert predictor.popen.wait(30) == 0, predictor.log()[-2000:]
    assert "Traceback" not in proxy.log() + predictor.log()


def test_a_predictor_that_dies_fails_the_readiness_probe_within_2_s(pair):
    predictor, proxy = pair
    assert httpx.get(proxy.url + READY).status_code == 200
    predictor.popen.kill()
    killed = time.monotonic()
    while httpx.get(proxy.url + READY, timeout=2).status_code == 200:
        assert time.monotonic() - killed < 2, "the probe still passes 2 s after the kill"
        time.sleep(0.05)
    assert time.monotonic() - killed < 2
    assert httpx.get(proxy.url + READY, timeout=2).status_code == 502
    # the proxy itself stays live and ready: only the predictor is restarted
    assert httpx.get(f"http://127.0.0.1:{proxy.admin_port}/readyz").status_code == 200


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_memory_stays_flat_under_sustained_traffic(pair, issuer):
    """Authenticated inferences on both doors, anonymous refusals and connections abandoned
    mid-request, for SOAK_SECONDS: after a warm-up quarter, neither process keeps growing."""
    predictor, proxy = pair
    cat = CAT.read_bytes()
    token = issuer.token()
    bearer = {"Authorization": f"Bearer {token}"}
    stop = time.monotonic() + SOAK_SECONDS
    counts = {"ok": 0, "refused": 0, "abandoned": 0, "wrong": 0}

    def traffic(kind: int) -> None:
        channel, stub = grpc_stub(proxy.grpc_target)
        with channel, httpx.Client(base_url=proxy.url, timeout=30) as client:
            while time.monotonic() < stop:
                if kind == 0:
                    ok = client.post(INFER, json=json_request([cat]), headers=bearer)
                    counts["ok" if ok.status_code == 200 else "wrong"] += 1
                elif kind == 1:
                    answer = stub.ModelInfer(
                        grpc_image_request([cat], raw=True),
                        metadata=[("authorization", f"Bearer {token}")],
                        timeout=30,
                    )
                    counts["ok" if len(grpc_values(answer)[0]) == 1 else "wrong"] += 1
                elif kind == 2:
                    refused = client.post(INFER, json=json_request([cat]))
                    counts["refused" if refused.status_code == 401 else "wrong"] += 1
                else:
                    with socket.create_connection(("127.0.0.1", proxy.http_port)) as sock:
                        sock.sendall(
                            f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                            f"Authorization: Bearer {token}\r\n\r\n".encode()
                            + b"{" * 1000
                        )
                    counts["abandoned"] += 1
                    time.sleep(0.05)

    samples: list[tuple[float, float, float]] = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [pool.submit(traffic, kind) for kind in range(4)]
        while time.monotonic() < stop:
            samples.append(
                (time.monotonic(), rss_mib(predictor.popen.pid), rss_mib(proxy.popen.pid))
            )
            time.sleep(0.5)
        for done in running:
            done.result()
    assert counts["wrong"] == 0, counts
    assert counts["ok"] > 50 and counts["refused"] > 10 and counts["abandoned"] > 10, counts
    warm = samples[len(samples) // 4]
    last = samples[-1]
    print(
        f"soak {SOAK_SECONDS:g} s, {counts}: predictor {warm[1]:.0f} -> {last[1]:.0f} MiB, "
        f"proxy {warm[2]:.0f} -> {last[2]:.0f} MiB"
    )
    assert last[1] - warm[1] < 40, f"predictor grew {last[1] - warm[1]:.1f} MiB"
    assert last[2] - warm[2] < 10, f"proxy grew {last[2] - warm[2]:.1f} MiB"
