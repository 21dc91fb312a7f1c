"""The decisive test: the rendered pod, started on this machine from its own manifest, passes
every probe it declares and answers an authenticated inference on the Service's target port.
A renamed port, a wrong probe path or a missing variable fails here."""

from __future__ import annotations

import pytest

from auth_proxy import devkeys
from support.issuer import Issuer
from support.local_pod import LocalPod, listening_addresses
from support.manifests import VARIANTS, only, render
from support.podcheck import check_pod
from support.prometheus import Prometheus, scrape_configs

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def dev_issuer(folder) -> str:
    """A development issuer's files in `folder`, and a token it signed."""
    devkeys.write_dev_keys(folder)
    return devkeys.dev_token(folder, "get::prediction", 600)


@pytest.fixture(scope="module", params=["default", "kind"])
def pod(request, tmp_path_factory):
    """The pod of a variant. `default`: the user's step of editing the ConfigMap is played by
    pointing OAUTH2_* at a real test issuer; `kind`: its development issuer, whose JWKS the
    ConfigMap volume `dev-issuer` carries."""
    workdir = tmp_path_factory.mktemp(f"pod-{request.param}")
    documents = render(VARIANTS[request.param])
    config = dict(only(documents, "ConfigMap")["data"])
    pod_spec = only(documents, "Deployment")["spec"]["template"]["spec"]
    issuer = None
    local = LocalPod(pod_spec, config, workdir)
    if request.param == "kind":
        local.volumes["dev-issuer"] = workdir / "dev-issuer"
        token = dev_issuer(local.volumes["dev-issuer"])
    else:
        issuer = Issuer()
        config.update(
            OAUTH2_ISSUER=issuer.url,
            OAUTH2_AUDIENCE="https://cats-dogs.example.com",
            OAUTH2_JWKS_URI="jwks.json",  # relative to the issuer, as the course gives it
        )
        token = issuer.token()
    local.start()
    try:
        yield local, documents, token
    finally:
        local.stop()
        if issuer:
            issuer.down()


def test_every_declared_probe_succeeds(pod):
    local, _, _ = pod
    for container in local.pod_spec["containers"]:
        declared = [kind for kind in PROBES if kind in container]
        assert "readinessProbe" in declared and "livenessProbe" in declared, container["name"]
        if "startupProbe" in container:
            local.wait_for(container["name"], "startupProbe", limit=300)
        for kind in declared:
            local.wait_for(container["name"], kind, limit=120)


def service_port(local: LocalPod, documents, name: str) -> int:
    """The container port the Service's port `name` targets (names resolve across the pod)."""
    service = only(documents, "Service")
    target = next(p["targetPort"] for p in service["spec"]["ports"] if p["name"] == name)
    if isinstance(target, int):
        return target
    for container in local.pod_spec["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == target:
                return port["containerPort"]
    raise AssertionError(f"Service port {name} targets {target!r}, which no container declares")


def test_the_pod_checks_through_the_service_ports(pod):
    local, documents, token = pod
    local.wait_for("predictor", "readinessProbe", limit=300)
    local.wait_for("auth-proxy", "readinessProbe", limit=60)  # its keys: fetched after start
    rest = f"http://127.0.0.1:{service_port(local, documents, 'http')}"
    check_pod(rest, f"127.0.0.1:{service_port(local, documents, 'grpc')}", token)


def test_the_predictors_own_ports_are_on_loopback_only(pod):
    local, _, _ = pod
    local.wait_for("predictor", "readinessProbe", limit=300)
    args = local.container("predictor")["args"]
    ports = [int(a.split("=")[1]) for a in args if a.startswith(("--http_port", "--grpc_port"))]
    assert ports == [8080, 8081]
    for port in ports:
        assert listening_addresses(port) == {"127.0.0.1"}
    for port in (p["containerPort"] for p in local.container("auth-proxy")["ports"]):
        assert listening_addresses(port) & {"0.0.0.0", "::"}


def test_prometheus_scrapes_the_pod_as_its_podmonitor_says(pod, tmp_path):
    """A real Prometheus, configured from the rendered PodMonitor and PrometheusRule, scrapes
    the running pod after a few requests: both targets up, each metric docs/operations.md's
    metrics table names present with sensible values, and no alert pending on a healthy pod."""
    local, documents, token = pod
    local.wait_for("predictor", "startupProbe", limit=300)
    local.wait_for("auth-proxy", "readinessProbe", limit=60)
    rest = f"http://127.0.0.1:{service_port(local, documents, 'http')}"
    check_pod(rest, f"127.0.0.1:{service_port(local, documents, 'grpc')}", token, say=print)
    monitored = render(VARIANTS["default"])  # the kind variant's pod is the same pod
    monitor = only(monitored, "PodMonitor")
    ports = {p["name"]: p["containerPort"] for p in local.container("auth-proxy")["ports"]}
    prometheus = Prometheus(
        tmp_path,
        scrape_configs(monitor, ports, pod="cats-dogs-other-local", container="auth-proxy"),
        rules=only(monitored, "PrometheusRule")["spec"],
    )
    try:
        up = prometheus.wait_for("count(up == 1) == 2")
        assert up, prometheus.targets()

        def value(expr: str) -> float:
            return float(prometheus.wait_for(expr)[0]["value"][1])

        # the two pages are two targets, told apart by `container`
        memory = prometheus.wait_for("process_resident_memory_bytes")
        assert {m["metric"]["container"] for m in memory} == {"auth-proxy", "predictor"}
        # the proxy: latency by door, protocol, route and status; refusals; upstream; keys
        assert (
            value(
                'auth_proxy_request_duration_seconds_count{door="rest",protocol="course",'
                'route="/upload",status="200"}'
            )
            >= 1
        )
        assert (
            value(
                'auth_proxy_request_duration_seconds_count{door="grpc",protocol="v2",'
                'route="ModelInfer",status="OK"}'
            )
            >= 1
        )
        assert (
            value('sum(auth_proxy_request_duration_seconds_bucket{route="/upload",le="+Inf"})') >= 2
        )
        assert value('auth_proxy_refusals_total{door="rest",reason="no_token"}') >= 2
        assert value('auth_proxy_refusals_total{door="grpc",reason="no_token"}') >= 1
        # every known reason is a series from the start; the only errors are the startup
        # probes that reached the proxy before the predictor listened (502, unreachable)
        assert value("count(auth_proxy_upstream_errors_total)") == 5
        assert value('sum(auth_proxy_upstream_errors_total{reason!="unreachable"})') == 0
        assert value("auth_proxy_jwks_keys") >= 1
        assert value('auth_proxy_jwks_fetches_total{outcome="ok"}') >= 1
        assert 0 <= value("time() - auth_proxy_jwks_last_success_timestamp_seconds") < 600
        assert value("auth_proxy_requests_in_flight") >= 0
        # the predictor: inference, batches, queue, the model in use
        assert value("predictor_inference_seconds_count") >= 2
        assert value("predictor_model_call_seconds_count") >= 2
        assert value("predictor_model_batch_size_count") >= 2
        assert value("predictor_batch_queue_seconds_count") >= 2
        assert value("predictor_batch_queue_images") == 0
        assert value("predictor_model_calls_in_flight") == 0
        assert value('request_predict_seconds_count{model_name="cats-dogs-other"}') >= 1
        assert value("predictor_model_ready") == 1
        # the memory budgets, sized at start, nothing held by a pod at rest
        assert value("auth_proxy_memory_budget_bytes") > 0
        assert value("auth_proxy_memory_budget_held_bytes") == 0
        assert value("predictor_memory_budget_bytes") > 0
        assert value("predictor_memory_budget_held_bytes") == 0
        assert 0 < value("predictor_model_load_seconds") < 300
        info = prometheus.wait_for("predictor_model_info")[0]["metric"]
        assert info["container"] == "predictor"
        assert info["runtime"] in ("openvino", "tensorflow")
        assert len(info["sha256"]) == 64 and info["version"] == info["sha256"][:12]
        # a healthy pod: the rules evaluate, and nothing is pending or firing
        rules = prometheus.rules()
        spec = only(monitored, "PrometheusRule")["spec"]
        alerts = {r["alert"] for group in spec["groups"] for r in group["rules"] if "alert" in r}
        assert {rule["name"] for rule in rules} == alerts and len(rules) == len(alerts)
        for rule in rules:
            assert rule["health"] == "ok", rule
            assert rule["state"] == "inactive", rule
        assert prometheus.query("ALERTS") == []
    finally:
        prometheus.stop()
