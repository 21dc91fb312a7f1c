"""What passes the proxy's REST port, how it is forwarded, and what the proxy answers when the
predictor cannot: headers, streaming, body limits, 502, 504, the probe allow-list."""

from __future__ import annotations

import httpx
import pytest

from support.clients import send_headers_only
from support.issuer import issuer_env
from support.servers import free_port, start_proxy

PUBLIC = ["/health", "/v2/health/live", "/v2/health/ready", "/v2/models/cats-dogs-other/ready"]
# (The documentation pages pass too, by PUBLIC_DOCS: test_public_docs.py.)
PROTECTED = [
    "/metrics",
    "/v2",
    "/v2/models/cats-dogs-other",
    "/v2/repository/index",
    "/v2/health/live/../../v2/models/cats-dogs-other",
    "/HEALTH",
]


@pytest.mark.parametrize("path", PUBLIC)
def test_probes_pass_without_a_token(proxy, path):
    response = httpx.get(f"http://127.0.0.1:{proxy.http_port}{path}")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", PROTECTED)
def test_nothing_else_is_reachable_without_a_token(proxy, path):
    response = httpx.get(f"http://127.0.0.1:{proxy.http_port}{path}")
    assert response.status_code == 401


def test_probe_paths_are_public_for_get_only(proxy):
    response = httpx.post(f"http://127.0.0.1:{proxy.http_port}/health")
    assert response.status_code == 401


def test_authenticated_inference_through_the_proxy(proxy, issuer):
    from support.clients import INFER, json_request, values_of
    from support.images import rgb_jpeg

    body = json_request([rgb_jpeg()])
    direct = httpx.post(proxy_upstream(proxy) + INFER, json=body, timeout=60)
    proxied = httpx.post(
        f"http://127.0.0.1:{proxy.http_port}{INFER}",
        json=body,
        headers={"Authorization": f"Bearer {issuer.token()}"},
        timeout=60,
    )
    assert proxied.status_code == 200
    assert values_of(proxied.json())[0] == values_of(direct.json())[0]


def proxy_upstream(proxy) -> str:
    for line in proxy.log().splitlines():
        if "REST" in line and "->" in line:
            return line.split("-> ")[1].split(",")[0]
    raise AssertionError("the proxy did not log its upstream")


def test_headers_are_forwarded_filtered_and_annotated(echo_proxy, issuer):
    response = httpx.post(
        f"http://127.0.0.1:{echo_proxy.http_port}/anything?x=1&y=two",
        content=b"hello",
        headers={
            "Authorization": f"Bearer {issuer.token(sub='alice')}",
            "X-Auth-Subject": "mallory",
            "X-Auth-Admin": "yes",
            "Connection": "keep-alive, X-Private",
            "X-Private": "hop-by-hop by name",
            "Keep-Alive": "timeout=5",
            "X-Request-Id": "req-7",
        },
    )
    assert response.status_code == 200
    assert response.headers["X-Upstream"] == "echo"
    echo = response.json()
    headers = dict(echo["headers"])
    assert echo["method"] == "POST"
    assert echo["path"] == "/anything?x=1&y=two"
    assert echo["body_length"] == 5
    assert headers["x-auth-subject"] == "alice"
    assert headers["x-auth-scopes"] == "openid get::prediction"
    assert "x-auth-admin" not in headers
    assert "authorization" not in headers  # the token stops at the proxy
    assert "x-private" not in headers
    assert "keep-alive" not in headers
    assert headers["x-request-id"] == "req-7"


def test_large_answers_stream_back_whole(echo_proxy, issuer):
    headers = {"Authorization": f"Bearer {issuer.token()}"}
    with httpx.stream(
        "GET", f"http://127.0.0.1:{echo_proxy.http_port}/big", headers=headers
    ) as response:
        data = b"".join(response.iter_bytes())
    assert response.status_code == 200
    assert data == bytes(range(256)) * (5 * 4096)


def test_declared_body_over_the_limit_is_413_before_it_is_sent(echo_proxy, issuer):
    status, body = send_headers_only(
        echo_proxy.http_port,
        f"POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {issuer.token()}\r\n"
        f"Content-Length: {2 * 1024 * 1024}\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 413")
    assert "over the limit of 1048576" in body


def test_streamed_body_over_the_limit_is_413(echo_proxy, issuer):
    def chunks():
        for _ in range(40):
            yield bytes(64 * 1024)

    response = httpx.post(
        f"http://127.0.0.1:{echo_proxy.http_port}/x",
        content=chunks(),
        headers={"Authorization": f"Bearer {issuer.token()}"},
    )
    assert response.status_code == 413
    assert "over the limit of 1048576 bytes" in response.json()["error_description"]


def test_body_under_the_limit_passes(echo_proxy, issuer):
    response = httpx.post(
        f"http://127.0.0.1:{echo_proxy.http_port}/x",
        content=bytes(1000 * 1024),
        headers={"Authorization": f"Bearer {issuer.token()}"},
    )
    assert response.status_code == 200
    assert response.json()["body_length"] == 1000 * 1024


def test_unsized_body_under_the_limit_streams_through(echo_proxy, issuer):
    def chunks():  # no Content-Length: chunked, so the proxy streams it rather than reading it
        for _ in range(8):
            yield bytes(64 * 1024)

    response = httpx.post(
        f"http://127.0.0.1:{echo_proxy.http_port}/x",
        content=chunks(),
        headers={"Authorization": f"Bearer {issuer.token()}"},
    )
    assert response.status_code == 200
    assert response.json()["body_length"] == 8 * 64 * 1024


def test_predictor_too_slow_is_504(echo_proxy, issuer):
    response = httpx.get(
        f"http://127.0.0.1:{echo_proxy.http_port}/slow",
        headers={"Authorization": f"Bearer {issuer.token()}"},
        timeout=10,
    )
    assert response.status_code == 504
    assert response.json()["error"] == "gateway_timeout"


def test_predictor_down_is_502(issuer, tmp_path):
    process = start_proxy(
        tmp_path,
        **issuer_env(issuer),
        UPSTREAM_HTTP=f"http://127.0.0.1:{free_port()}",
        UPSTREAM_GRPC=f"127.0.0.1:{free_port()}",
    )
    try:
        base = f"http://127.0.0.1:{process.http_port}"
        response = httpx.get(
            base + "/v2/models/cats-dogs-other",
            headers={"Authorization": f"Bearer {issuer.token()}"},
        )
        assert response.status_code == 502
        assert response.json()["error"] == "bad_gateway"
        assert httpx.get(base + "/v2/health/live").status_code == 502  # probes fail too
    finally:
        process.stop()


def test_admin_port_serves_liveness_readiness_and_metrics(proxy):
    admin = f"http://127.0.0.1:{proxy.admin_port}"
    assert httpx.get(admin + "/livez").json() == {"live": True}
    ready = httpx.get(admin + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    metrics = httpx.get(admin + "/metrics").text
    assert 'auth_proxy_refusals_total{door="rest",reason="no_token"}' in metrics
    assert 'auth_proxy_jwks_fetches_total{outcome="ok"}' in metrics
