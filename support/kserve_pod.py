"""The pod KServe (raw / Standard mode) makes of a ServingRuntime and an InferenceService, for
running it here as the other variants' pods are (support/local_pod.py).

Only what KServe does to the parts these manifests use, read from its controller
(`components/predictor.go` buildPodSpec, `utils.MergeRuntimeContainers`, the storage
initializer injector, `service_reconciler.go`), 0.16 and later:
- kserve-container: the runtime's, with the InferenceService's `model` fields merged over it
  (env by name, resources key by key, args appended), templated (`{{.Name}}`, ...) with the
  InferenceService's metadata; the runtime's other containers follow as they are;
- the storage initializer's volume, where it put the model, mounted read-only at /mnt/models on
  kserve-container only;
- the pod: the runtime's volumes, the predictor's pod fields (securityContext, ...), and the
  labels: runtime `spec.labels`, then the InferenceService's, the predictor's, and KServe's own;
- the Service: kserve-container's first port behind port 80, each further port as itself.
"""

from __future__ import annotations

import copy
import json

MODEL_VOLUME = "kserve-provision-location"
MODEL_MOUNT = "/mnt/models"
POD_FIELDS = (
    "securityContext",
    "terminationGracePeriodSeconds",
    "automountServiceAccountToken",
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
)


def _templated(container: dict, metadata: dict) -> dict:
    """KServe runs Go's text/template over the container's JSON with the InferenceService's
    metadata; the placeholders these manifests could use are `{{.Name}}` and `{{.Namespace}}`."""
    text = json.dumps(container)
    for key in ("Name", "Namespace"):
        text = text.replace("{{." + key + "}}", metadata.get(key.lower(), ""))
    assert "{{" not in text, f"a template KServe would fill and this does not: {text}"
    return json.loads(text)


def _merged(runtime: dict, model: dict) -> dict:
    merged = copy.deepcopy(runtime)
    env = {e["name"]: e for e in merged.get("env", [])}
    for entry in model.get("env", []):
        env[entry["name"]] = entry
    if env:
        merged["env"] = list(env.values())
    merged["args"] = runtime.get("args", []) + model.get("args", [])
    for kind, values in model.get("resources", {}).items():
        merged.setdefault("resources", {}).setdefault(kind, {}).update(values)
    for key in ("image", "command", "readinessProbe", "livenessProbe", "startupProbe"):
        if key in model:
            merged[key] = model[key]
    return merged


def kserve_pod(runtime: dict, service: dict) -> tuple[dict, dict]:
    """(pod spec, pod labels) of the InferenceService's predictor."""
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    wanted = model["modelFormat"]
    formats = runtime["spec"]["supportedModelFormats"]
    assert model.get("runtime") == runtime["metadata"]["name"], "the runtime named"
    assert any(
        f["name"] == wanted["name"] and f.get("version") == wanted.get("version") for f in formats
    ), f"the runtime does not serve {wanted}"
    containers = runtime["spec"]["containers"]
    main = next(c for c in containers if c["name"] == "kserve-container")
    main = _templated(_merged(main, model), service["metadata"])
    main.setdefault("volumeMounts", []).append(
        {"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
    )
    pod = {
        "containers": [main] + [c for c in containers if c["name"] != "kserve-container"],
        "volumes": [*runtime["spec"].get("volumes", []), {"name": MODEL_VOLUME, "emptyDir": {}}],
    }
    for field in POD_FIELDS:
        if field in predictor:
            pod[field] = predictor[field]
    labels = {
        **runtime["spec"].get("labels", {}),
        **service["metadata"].get("labels", {}),
        **predictor.get("labels", {}),
        "serving.kserve.io/inferenceservice": service["metadata"]["name"],
        "component": "predictor",
    }
    return pod, labels


def service_ports(pod: dict) -> dict[int, int]:
    """{Service port: target port}: kserve-container's first port behind 80, the rest as is."""
    ports = [p["containerPort"] for p in pod["containers"][0].get("ports", [])] or [8080]
    return {80: ports[0], **{port: port for port in ports[1:]}}
