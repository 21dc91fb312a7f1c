"""The kind job's checks: wait for the Deployment with the Kubernetes Python client, then,
through a port-forward to the Service, the same checks as the pod test: the probe paths
without a token, an authenticated REST and gRPC inference, a refusal without one.

    python -m tools.kind_check [--namespace default] [--timeout 600]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import httpx

from auth_proxy import devkeys

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["/health", "/v2/health/live", "/v2/health/ready", "/v2/models/cats-dogs-other/ready"]


def wait_available(namespace: str, timeout: float) -> None:
    from kubernetes import client, config

    config.load_kube_config()
    apps = client.AppsV1Api()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = apps.read_namespaced_deployment_status("cats-dogs-other", namespace).status
        if (status.ready_replicas or 0) >= 1 and (status.updated_replicas or 0) >= 1:
            print(f"deployment ready: {status.ready_replicas} pod(s)")
            return
        time.sleep(5)
    raise SystemExit(f"cats-dogs-other not ready after {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    wait_available(args.namespace, args.timeout)

    forward = subprocess.Popen(
        [
            "kubectl",
            "-n",
            args.namespace,
            "port-forward",
            "svc/cats-dogs-other",
            "19080:9080",
            "19081:9081",
        ]
    )
    try:
        time.sleep(3)
        base = "http://127.0.0.1:19080"
        for path in PUBLIC:
            response = httpx.get(base + path, timeout=10)
            print(f"GET {path} -> {response.status_code}")
            assert response.status_code == 200, response.text
        assert httpx.get(base + "/v2/models/cats-dogs-other").status_code == 401
        token = devkeys.dev_token(ROOT / ".dev-issuer", "get::prediction", 600)
        cat = (ROOT / "tests" / "fixtures" / "cat.png").read_bytes()
        upload = httpx.post(
            base + "/upload",
            files={"file": ("cat.png", cat)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        print(f"POST /upload -> {upload.status_code} {upload.text}")
        assert upload.status_code == 200 and upload.json()["prediction"] == "Cat"

        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

        with grpc.insecure_channel("127.0.0.1:19081") as channel:
            stub = GRPCInferenceServiceStub(channel)
            tensor = pb.ModelInferRequest.InferInputTensor(
                name="image", datatype="BYTES", shape=[1]
            )
            tensor.contents.bytes_contents.append(cat)
            answer = stub.ModelInfer(
                pb.ModelInferRequest(model_name="cats-dogs-other", inputs=[tensor]),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=60,
            )
            label = answer.outputs[0].contents.bytes_contents[0].decode()
            print(f"gRPC ModelInfer -> {label}")
            assert label == "Cat"
        print("kind checks passed")
        return 0
    finally:
        forward.terminate()


if __name__ == "__main__":
    sys.exit(main())
