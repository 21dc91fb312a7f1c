"""Every kustomize variant renders and validates: built-in kinds strictly against Kubernetes
1.30's schemas, the custom resources (Route, ServingRuntime, InferenceService, PodMonitor,
PrometheusRule) against their CRDs' schemas."""

from __future__ import annotations

import json

import pytest

from support.manifests import VARIANTS, only, render
from support.servers import ROOT

SCHEMAS = ROOT / "tests" / "data" / "crd-schemas"  # credited in its README.md
CUSTOM = {
    ("route.openshift.io/v1", "Route"): "route-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime-v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-v1.json",
}
# The custom resources each variant holds: every one is validated.
CUSTOM_KINDS = {
    "default": {"Route", "PodMonitor", "PrometheusRule"},
    "kserve": {"ServingRuntime", "InferenceService", "PodMonitor", "PrometheusRule"},
    "base": set(),
    "kind": set(),
}


def without_nulls(schema):
    """CRD schemas mark int-or-string fields with `anyOf: null`, which is no JSON Schema:
    drop such keywords (the `x-kubernetes-int-or-string` marker beside them stays); and
    patterns in Go's spelling become Python's."""
    if isinstance(schema, dict):
        return {k: python_pattern(k, without_nulls(v)) for k, v in schema.items() if v is not None}
    if isinstance(schema, list):
        return [without_nulls(item) for item in schema]
    return schema


def python_pattern(key: str, value):
    """Go's regexp takes flags anywhere (`^(?i)abort`), Python's only at the start: the
    PrometheusRule schema's patterns are moved to Python's spelling."""
    if key == "pattern" and isinstance(value, str) and value.startswith("^(?i)"):
        return "(?i)^" + value.removeprefix("^(?i)")
    return value


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_builtin_kinds_validate_strictly_against_kubernetes_1_30(variant):
    import kubernetes_validate

    for document in render(VARIANTS[variant]):
        if (document["apiVersion"], document["kind"]) in CUSTOM:
            continue
        kubernetes_validate.validate(document, "1.30.0", strict=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_custom_resources_validate_against_their_crd_schemas(variant):
    import jsonschema

    checked = set()
    for document in render(VARIANTS[variant]):
        schema_file = CUSTOM.get((document["apiVersion"], document["kind"]))
        if schema_file:
            schema = without_nulls(json.loads((SCHEMAS / schema_file).read_text()))
            jsonschema.validate(document, schema)
            checked.add(document["kind"])
    assert checked == CUSTOM_KINDS[variant]


def test_the_default_is_the_openshift_deployment():
    kinds = sorted(d["kind"] for d in render(VARIANTS["default"]))
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PodMonitor",
            "PrometheusRule",
            "Route",
            "Service",
        ]
    )


def test_no_secret_is_committed_and_the_s3_secret_is_referenced():
    documents = render(VARIANTS["default"])
    assert not [d for d in documents if d["kind"] == "Secret"]
    predictor = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in predictor["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(refs) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert {ref["name"] for ref in refs.values()} == {"cats-dogs-other-s3"}


@pytest.mark.parametrize("variant", ["default", "kind"])
def test_the_service_and_network_policy_open_only_the_proxys_doors(variant):
    documents = render(VARIANTS[variant])
    pod = only(documents, "Deployment")["spec"]["template"]["spec"]
    proxy_ports = {
        p["name"]: p["containerPort"]
        for c in pod["containers"]
        if c["name"] == "auth-proxy"
        for p in c["ports"]
    }
    assert not [c for c in pod["containers"] if c["name"] != "auth-proxy" and c.get("ports")]
    service = only(documents, "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http", "grpc"}
    grpc = next(p for p in service["spec"]["ports"] if p["targetPort"] == "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c"
    doors, monitoring = only(documents, "NetworkPolicy")["spec"]["ingress"]
    assert "from" not in doors
    assert {p["port"] for p in doors["ports"]} == {proxy_ports["http"], proxy_ports["grpc"]}
    # the admin port (metrics): from the monitoring namespaces only
    assert [p["port"] for p in monitoring["ports"]] == [proxy_ports["admin"]]
    (source,) = monitoring["from"]
    assert source == {
        "namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "monitoring"}}
    }


def test_the_podmonitor_scrapes_both_pages_of_the_admin_port():
    documents = render(VARIANTS["default"])
    template = only(documents, "Deployment")["spec"]["template"]
    monitor = only(documents, "PodMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    endpoints = {(e["port"], e["path"]) for e in monitor["podMetricsEndpoints"]}
    assert endpoints == {("admin", "/metrics"), ("admin", "/metrics/predictor")}


@pytest.mark.parametrize("variant", ["default", "kind"])
def test_the_pod_runs_restricted(variant):
    pod = only(render(VARIANTS[variant]), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    mounted = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]
        assert {m["name"] for m in container["volumeMounts"]} & mounted


def test_the_kserve_variant_is_a_serving_runtime_and_an_inference_service_naming_it():
    documents = render(VARIANTS["kserve"])
    runtime, service = only(documents, "ServingRuntime"), only(documents, "InferenceService")
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"] in [
        {"name": f["name"], "version": f["version"]}
        for f in runtime["spec"]["supportedModelFormats"]
    ]
    assert model["storageUri"].startswith("s3://")
    assert [c["name"] for c in runtime["spec"]["containers"]] == ["kserve-container", "auth-proxy"]
    assert set(runtime["spec"]["protocolVersions"]) >= {"v2", "grpc-v2"}
    predictor = runtime["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in predictor["env"]}
    assert env["MODEL_URI"] == "/mnt/models" and env["PREDICTOR_LISTEN_HOST"] == "127.0.0.1"
    # the images and the ConfigMap are kustomize's (names rewritten in the ServingRuntime)
    config = only(documents, "ConfigMap")["metadata"]["name"]
    refs = {
        e["valueFrom"]["configMapKeyRef"]["name"]
        for c in runtime["spec"]["containers"]
        for e in c.get("env", [])
        if "configMapKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {config}
    assert all(c["image"].startswith("quay.io/") for c in runtime["spec"]["containers"])
