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
