"""The KServe variant as the pod KServe makes of it (support/kserve_pod.py): the ServingRuntime's
containers with the InferenceService's model merged in, the model where KServe's storage
initializer puts it, started here and checked as the other variants' pods are: every probe,
an authenticated inference on both protocols through the Service's target ports, the
predictor on loopback only, and the PodMonitor and NetworkPolicy selecting this pod."""

from __future__ import annotations

import shutil

import pytest

from predictor import default_model
from support.issuer import Issuer
from support.kserve_pod import MODEL_VOLUME, kserve_pod, service_ports
from support.local_pod import LocalPod, listening_addresses
from support.manifests import VARIANTS, only, render
from support.podcheck import check_pod

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


@pytest.fixture(scope="module")
def documents():
    return render(VARIANTS["kserve"])


@pytest.fixture(scope="module")
def pod(documents, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pod-kserve")
    spec, labels = kserve_pod(
        only(documents, "ServingRuntime"), only(documents, "InferenceService")
    )
    issuer = Issuer()
    config = dict(only(documents, "ConfigMap")["data"])
    config.update(
        OAUTH2_ISSUER=issuer.url,
        OAUTH2_AUDIENCE="https://cats-dogs.example.com",
        OAUTH2_JWKS_URI="jwks.json",
    )
    local = LocalPod(spec, config, workdir)
    # What the storage initializer leaves in the model volume: the model's folder.
    local.volumes[MODEL_VOLUME] = workdir / "model"
    local.volumes[MODEL_VOLUME].mkdir()
    shutil.copy(default_model.PATH, local.volumes[MODEL_VOLUME] / "final_model.keras")
    local.start()
    try:
        yield local, labels, issuer.token()
    finally:
        local.stop()
        issuer.down()


def test_every_declared_probe_succeeds(pod):
    local, _, _ = pod
    for container in local.pod_spec["containers"]:
        declared = [kind for kind in PROBES if kind in container]
        assert "readinessProbe" in declared and "livenessProbe" in declared, container["name"]
        for kind in declared:
            local.wait_for(container["name"], kind, limit=300)


def test_the_service_reaches_the_proxy_and_the_model_from_the_storage_volume(pod):
    local, _, token = pod
    local.wait_for("kserve-container", "startupProbe", limit=300)
    local.wait_for("auth-proxy", "readinessProbe", limit=60)
    ports = service_ports(local.pod_spec)
    assert ports == {80: 9080, 9081: 9081}
    check_pod(f"http://127.0.0.1:{ports[80]}", f"127.0.0.1:{ports[9081]}", token)
    loaded = f"loaded and warmed up: uri {local.volumes[MODEL_VOLUME]}, location"
    assert loaded in local.log("kserve-container")


def test_only_the_proxy_listens_beyond_loopback(pod):
    local, _, _ = pod
    local.wait_for("kserve-container", "startupProbe", limit=300)
    for port in (8080, 8081):
        assert listening_addresses(port) == {"127.0.0.1"}
    for port in (9080, 9081, 9082):
        assert listening_addresses(port) & {"0.0.0.0", "::"}


def test_the_podmonitor_and_the_network_policy_select_this_pod(documents, pod):
    local, labels, _ = pod
    monitor = only(documents, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    named = {p["name"] for c in local.pod_spec["containers"] for p in c.get("ports", [])}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= named
    policy = only(documents, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    open_to_all = {p["port"] for p in policy["spec"]["ingress"][0]["ports"]}
    assert "from" not in policy["spec"]["ingress"][0]
    assert open_to_all == set(service_ports(local.pod_spec).values())
