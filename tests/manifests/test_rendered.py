"""Every kustomize variant renders and validates: built-in kinds strictly against Kubernetes
1.30's schemas, the Route and the InferenceService against their CRDs' schemas."""

from __future__ import annotations

import json

import pytest

from support.images import SHARED_PHOTOS
from support.manifests import VARIANTS, only, render

SCHEMAS = SHARED_PHOTOS.parents[1] / "schemas"
CUSTOM = {
    ("route.openshift.io/v1", "Route"): "route-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
}


def without_nulls(schema):
    """CRD schemas mark int-or-string fields with `anyOf: null`, which is no JSON Schema:
    drop such keywords (the `x-kubernetes-int-or-string` marker beside them stays)."""
    if isinstance(schema, dict):
        return {k: without_nulls(v) for k, v in schema.items() if v is not None}
    if isinstance(schema, list):
        return [without_nulls(item) for item in schema]
    return schema


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_builtin_kinds_validate_strictly_against_kubernetes_1_30(variant):
    import kubernetes_validate

    for document in render(VARIANTS[variant]):
        if (document["apiVersion"], document["kind"]) in CUSTOM:
            continue
        kubernetes_validate.validate(document, "1.30.0", strict=True)


@pytest.mark.parametrize("variant", ["default", "kserve"])
def test_custom_resources_validate_against_their_crd_schemas(variant):
    import jsonschema

    if not SCHEMAS.is_dir():
        pytest.skip(f"CRD schemas not found at {SCHEMAS} (../shared is absent)")
    checked = 0
    for document in render(VARIANTS[variant]):
        schema_file = CUSTOM.get((document["apiVersion"], document["kind"]))
        if schema_file:
            schema = without_nulls(json.loads((SCHEMAS / schema_file).read_text()))
            jsonschema.validate(document, schema)
            checked += 1
    assert checked == 1


def test_the_default_is_the_openshift_deployment():
    kinds = sorted(d["kind"] for d in render(VARIANTS["default"]))
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
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
    policy = only(documents, "NetworkPolicy")
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {proxy_ports["http"], proxy_ports["grpc"]}


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


def test_the_inferenceservice_is_the_same_pair_in_standard_mode():
    service = only(render(VARIANTS["kserve"]), "InferenceService")
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = service["spec"]["predictor"]
    names = [c["name"] for c in predictor["containers"]]
    assert names == ["kserve-container", "auth-proxy"]
    assert predictor["storageUris"][0]["mountPath"] == "/mnt/models"
    env = {e["name"]: e.get("value") for e in predictor["containers"][0]["env"]}
    assert env["MODEL_URI"] == "/mnt/models"
    assert predictor["scaleMetric"] == "cpu"
