"""`make serve`: the whole pod on this machine, predictor and auth proxy, from the manifests.

Renders the `kind` overlay (the base Deployment plus a development issuer), makes that issuer's
keys in `.dev-issuer/` (once), starts both containers as local processes with the env, args and
ports the manifest gives them (support/local_pod.py), waits for every probe, then prints a curl
with a fresh token. Ctrl-C stops the pod.

ConfigMap keys that are set in your environment win (MODEL_URI, MLFLOW_TRACKING_URI,
MLFLOW_S3_ENDPOINT_URL, …), and so do the S3 Secret's keys (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY): `MODEL_URI=runs:/<id> make serve` serves your model.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from auth_proxy import devkeys
from support.local_pod import LocalPod, PodError
from support.manifests import ROOT, only, render

ISSUER_DIR = ROOT / ".dev-issuer"


def main() -> int:
    documents = render(ROOT / "manifests" / "overlays" / "kind")
    config = dict(only(documents, "ConfigMap")["data"])
    config.update({key: os.environ[key] for key in config if os.environ.get(key)})
    secrets = {
        k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ
    }
    if not (ISSUER_DIR / "jwks.json").is_file():
        devkeys.write_dev_keys(ISSUER_DIR)
    pod_spec = only(documents, "Deployment")["spec"]["template"]["spec"]
    with tempfile.TemporaryDirectory(prefix="cats-dogs-other-pod-") as workdir:
        pod = LocalPod(pod_spec, config, Path(workdir), secrets=secrets)
        pod.volumes["dev-issuer"] = ISSUER_DIR
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            pod.start()
            print("starting the pod: predictor and auth-proxy (logs in", workdir + ")", flush=True)
            for container in pod_spec["containers"]:
                if "startupProbe" in container:
                    pod.wait_for(container["name"], "startupProbe", limit=600)
                pod.wait_for(container["name"], "readinessProbe", limit=600)
            token = devkeys.dev_token(ISSUER_DIR, "get::prediction", 3600)
            print(
                f"""
ready: {config.get("MODEL_URI") or "the built-in demo model"} behind the auth proxy
  REST :9080, gRPC :9081 (token needed, probes excepted), proxy admin :9082

curl -s -H "Authorization: Bearer {token}" \\
  -F file=@tests/fixtures/cat.png http://127.0.0.1:9080/upload

In a browser: http://127.0.0.1:9080/docs, Authorize with the token above, then /upload.

(a new token: .venv/bin/python -m auth_proxy dev-token --dir .dev-issuer --ttl 1h;
 with your own issuer in OAUTH2_*: python3 tools/oauth2_token.py, see docs/security.md)
Ctrl-C stops the pod.""",
                flush=True,
            )
            while not stop.wait(1):
                for name, process in pod.processes.items():
                    if process.poll() is not None:
                        print(f"{name} exited with {process.returncode}:\n{pod.log(name)[-3000:]}")
                        return 1
        except PodError as exc:
            print(f"the pod did not come up: {exc}", file=sys.stderr)
            for name in pod.processes:
                print(f"--- {name}\n{pod.log(name)[-3000:]}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
        finally:
            pod.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
