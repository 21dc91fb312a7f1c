"""Payload logging in the manifests: both pods give the proxy its namespace by the downward API
(the events' `namespace`), and the KServe overlay shows the InferenceService's own `logger`
field, commented out, in a form its schema accepts, for the reason its comment gives: KServe's
agent would listen on the proxy's gRPC port."""

from __future__ import annotations

import copy
import json
import re

import yaml

from support.manifests import VARIANTS, only, render
from support.servers import ROOT

ISVC = ROOT / "manifests" / "overlays" / "kserve" / "inferenceservice.yaml"
SCHEMA = ROOT / "tests" / "data" / "crd-schemas" / "inferenceservice-v1beta1.json"
KSERVE_AGENT_PORT = 9081  # kserve pkg/constants: InferenceServiceDefaultAgentPort
DOWNWARD_NAMESPACE = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}


def proxy_env(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container["env"]}


def test_both_pods_give_the_proxy_its_namespace():
    deployment = only(render(VARIANTS["base"]), "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    runtime = only(render(VARIANTS["kserve"]), "ServingRuntime")
    for pod_containers in (containers, runtime["spec"]["containers"]):
        proxy = next(c for c in pod_containers if c["name"] == "auth-proxy")
        entry = proxy_env(proxy)["POD_NAMESPACE"]
        assert {k: v for k, v in entry.items() if k != "name"} == DOWNWARD_NAMESPACE
        assert "PAYLOAD_LOG_URL" not in proxy_env(proxy)  # off unless an operator sets it


def commented_logger() -> dict:
    """The `logger:` block the InferenceService holds as a comment, uncommented."""
    lines = ISVC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# logger:")
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not re.match(r"\s*#\s{3}", line):
            break
        block.append(line)
    text = "\n".join(re.sub(r"^(\s*)# ?", r"\1", line) for line in block)
    return yaml.safe_load(text)["logger"]


def test_the_inference_services_logger_field_is_shown_valid_and_left_unset():
    import jsonschema

    logger = commented_logger()
    assert logger["mode"] == "all" and logger["url"].startswith("https://")
    service = only(render(VARIANTS["kserve"]), "InferenceService")
    assert "logger" not in service["spec"]["predictor"]
    with_logger = copy.deepcopy(service)
    with_logger["spec"]["predictor"]["logger"] = logger
    schema = json.loads(SCHEMA.read_text())
    logger_schema = schema["properties"]["spec"]["properties"]["predictor"]["properties"]
    assert logger["mode"] in logger_schema["logger"]["properties"]["mode"]["enum"]
    jsonschema.validate(with_logger["spec"]["predictor"]["logger"], logger_schema["logger"])


def test_the_reason_the_logger_is_left_unset_holds():
    """KServe's agent takes port 9081 in the pod; while the proxy's gRPC door is there too,
    the overlay must not set `logger` (the comment says so): the two could not both listen."""
    runtime = only(render(VARIANTS["kserve"]), "ServingRuntime")
    proxy = next(c for c in runtime["spec"]["containers"] if c["name"] == "auth-proxy")
    assert proxy_env(proxy)["PROXY_GRPC_PORT"]["value"] == str(KSERVE_AGENT_PORT)
    assert f"listens on {KSERVE_AGENT_PORT}, the proxy's gRPC port" in ISVC.read_text()
