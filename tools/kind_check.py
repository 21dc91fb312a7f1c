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

from auth_proxy import devkeys
from support.podcheck import check_pod

ROOT = Path(__file__).resolve().parents[1]


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
        token = devkeys.dev_token(ROOT / ".dev-issuer", "get::prediction", 600)
        check_pod("http://127.0.0.1:19080", "127.0.0.1:19081", token)
        print("kind checks passed")
        return 0
    finally:
        forward.terminate()


if __name__ == "__main__":
    sys.exit(main())
