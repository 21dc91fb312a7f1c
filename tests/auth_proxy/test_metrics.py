"""What the admin port tells monitoring: the proxy's metrics, labelled by port (`door`), protocol,
route template and status whatever path a client writes; the predictor's page, read from loopback;
and what both say when the predictor cannot answer."""

from __future__ import annotations

import secrets

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from auth_proxy.route_labels import GRPC_METHODS, REST_TEMPLATES
from support.clients import MODEL, grpc_stub
from support.issuer import issuer_env
from support.servers import free_port, start_proxy


def samples(admin_port: int, path: str = "/metrics") -> dict[tuple, float]:
    """{(name, sorted labels): value} of a metrics page."""
    text = httpx.get(f"http://127.0.0.1:{admin_port}{path}").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count(page: dict, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(
        value
        for (name, found), value in page.items()
        if name == "auth_proxy_request_duration_seconds_count" and wanted <= set(found)
    )


def test_requests_are_measured_by_route_template(proxy, issuer):
    bearer = {"Authorization": f"Bearer {issuer.token()}"}
    base = f"http://127.0.0.1:{proxy.http_port}"
    before = samples(proxy.admin_port)
    assert httpx.get(f"{base}/v2/models/{MODEL}", headers=bearer).status_code == 200
    assert httpx.get(f"{base}/v2/models/{MODEL}/versions/abc", headers=bearer).status_code == 404
    assert httpx.get(f"{base}/v2/models/{MODEL}/ready").status_code == 200
    after = samples(proxy.admin_port)
    for route, status in (
        ("/v2/models/{model}", "200"),
        ("/v2/models/{model}/versions/{version}", "404"),
        ("/v2/models/{model}/ready", "200"),
    ):
        labels = {"door": "rest", "protocol": "v2", "route": route, "status": status}
        assert count(after, **labels) == count(before, **labels) + 1, route


def test_paths_a_client_makes_up_add_no_series(proxy, issuer):
    bearer = {"Authorization": f"Bearer {issuer.token()}"}
    base = f"http://127.0.0.1:{proxy.http_port}"

    def made_up_requests() -> None:
        for _ in range(40):
            httpx.get(f"{base}/{secrets.token_hex(8)}/{secrets.token_hex(4)}", headers=bearer)
            httpx.get(f"{base}/v2/models/{secrets.token_hex(8)}/infer?x={secrets.token_hex(4)}")

    made_up_requests()  # the first round may add the series of its answers (route "other")
    series = set(samples(proxy.admin_port))
    made_up_requests()
    assert set(samples(proxy.admin_port)) == series
    routes = {dict(labels)["route"] for _, labels in series if "route" in dict(labels)}
    assert "other" in routes
    assert routes <= REST_TEMPLATES | GRPC_METHODS | {"other"}


def test_the_grpc_port_is_measured_by_method_and_code(proxy, issuer):
    channel, stub = grpc_stub(f"127.0.0.1:{proxy.grpc_port}")
    before = samples(proxy.admin_port)
    with channel:
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        bearer = [("authorization", f"Bearer {issuer.token()}")]
        stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=bearer, timeout=10)
    after = samples(proxy.admin_port)
    for code in ("UNAUTHENTICATED", "OK"):
        labels = {"door": "grpc", "protocol": "v2", "route": "ModelMetadata", "status": code}
        assert count(after, **labels) == count(before, **labels) + 1, code
    key = ("auth_proxy_refusals_total", (("door", "grpc"), ("reason", "no_token")))
    assert after[key] == before.get(key, 0) + 1


def test_the_predictors_page_is_served_on_the_admin_port(proxy):
    page = samples(proxy.admin_port, "/metrics/predictor")
    assert page[("predictor_model_ready", ())] == 1
    assert not [name for name, _ in page if name.startswith("auth_proxy_")]
    # OpenMetrics when the scraper asks for it, as Prometheus does
    answer = httpx.get(
        f"http://127.0.0.1:{proxy.admin_port}/metrics/predictor",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    own = httpx.get(
        f"http://127.0.0.1:{proxy.admin_port}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert own.text.endswith("# EOF\n")


def test_the_predictors_metrics_are_not_served_through_the_proxy(proxy, issuer):
    bearer = {"Authorization": f"Bearer {issuer.token()}"}
    base = f"http://127.0.0.1:{proxy.http_port}"
    for path in ("/metrics", "//metrics", "/metrics/"):
        answer = httpx.get(base + path, headers=bearer)
        assert answer.status_code == 404, path
        assert "admin port" in answer.json()["error_description"]


def test_a_predictor_that_cannot_answer_is_counted_and_its_page_is_503(issuer, tmp_path):
    process = start_proxy(
        tmp_path,
        **issuer_env(issuer),
        UPSTREAM_HTTP=f"http://127.0.0.1:{free_port()}",
        UPSTREAM_GRPC=f"127.0.0.1:{free_port()}",
    )
    try:
        bearer = {"Authorization": f"Bearer {issuer.token()}"}
        base = f"http://127.0.0.1:{process.http_port}"
        assert httpx.get(f"{base}/v2/models/{MODEL}", headers=bearer).status_code == 502
        channel, stub = grpc_stub(f"127.0.0.1:{process.grpc_port}")
        with channel, pytest.raises(grpc.RpcError) as failed:
            metadata = [("authorization", f"Bearer {issuer.token()}")]
            stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=metadata, timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        page = samples(process.admin_port)
        errors = "auth_proxy_upstream_errors_total"
        assert page[(errors, (("door", "rest"), ("reason", "unreachable")))] == 1
        assert page[(errors, (("door", "grpc"), ("reason", "UNAVAILABLE")))] == 1
        assert page[(errors, (("door", "rest"), ("reason", "timeout")))] == 0
        assert count(page, door="rest", status="502") == 1
        predictor = httpx.get(f"http://127.0.0.1:{process.admin_port}/metrics/predictor")
        assert predictor.status_code == 503
        assert "the predictor's metrics" in predictor.text
    finally:
        process.stop()


def test_key_metrics_say_how_many_keys_and_since_when(proxy):
    import time

    page = samples(proxy.admin_port)
    assert page[("auth_proxy_jwks_keys", ())] >= 1
    fetched = page[("auth_proxy_jwks_last_success_timestamp_seconds", ())]
    assert 0 <= time.time() - fetched < 600
    assert page[("auth_proxy_jwks_fetches_total", (("outcome", "ok"),))] >= 1


def test_a_client_that_leaves_before_its_answer_is_499_not_an_upstream_error(proxy, issuer):
    """The request reaches the predictor, the client hangs up while it works: the answer cannot
    be written. That is the client's doing (nginx's 499), not a broken predictor answer."""
    import json
    import socket
    import time
    from pathlib import Path

    from support.clients import json_request

    photo = (Path(__file__).parents[1] / "fixtures" / "cat.png").read_bytes()
    body = json.dumps(json_request([photo] * 8)).encode()
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {issuer.token()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    route = {"door": "rest", "protocol": "v2", "route": "/v2/models/{model}/infer"}
    broken = ("auth_proxy_upstream_errors_total", (("door", "rest"), ("reason", "broken_answer")))
    before = samples(proxy.admin_port)
    with socket.create_connection(("127.0.0.1", proxy.http_port)) as sock:
        sock.sendall(head + body)
        time.sleep(0.05)  # admitted and forwarded; the predictor decodes 8 photos meanwhile
    for _ in range(100):
        after = samples(proxy.admin_port)
        if count(after, **route) > count(before, **route):
            break
        time.sleep(0.1)
    assert count(after, **route, status="499") == count(before, **route, status="499") + 1
    assert count(after, **route) == count(before, **route) + 1
    assert after[broken] == before[broken]
