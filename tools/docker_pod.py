"""The pod, for real: the two images run as two containers sharing one network namespace, as
the containers of a Kubernetes pod do, with the rendered Deployment's command, args, env and
ports, as a random UID in group 0 (as OpenShift runs them), with a read-only root file system
and tmpfs where the manifest mounts `emptyDir`s; then every declared probe and one
authenticated inference through the proxy's published port, and a look inside the pod's
network namespace to check that the predictor's own ports are on loopback only.

    bash tools/build_images.sh && python -m tools.docker_pod     # the kind overlay's pod

Exits 0 when every check passes. The images are those tools/build_images.sh tags
(cats-dogs-other/<name>:local); the development issuer's JWKS is mounted where the kind overlay
mounts its ConfigMap.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from auth_proxy import devkeys
from support.local_pod import listening_addresses
from support.manifests import ROOT, only, render
from support.podcheck import check_pod

POD = "cats-dogs-other-pod"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def environment(container: dict, config: dict[str, str]) -> list[str]:
    flags = []
    for entry in container.get("env", []):
        source = entry.get("valueFrom", {})
        if "value" in entry:
            value = entry["value"]
        elif "configMapKeyRef" in source:
            value = config[source["configMapKeyRef"]["key"]]  # KeyError: the manifest is wrong
        elif source.get("secretKeyRef", {}).get("optional"):
            continue
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            value = "default"  # the downward API's, for a pod in the default namespace
        else:
            raise SystemExit(f"{container['name']}: cannot supply {entry['name']}")
        flags += ["-e", f"{entry['name']}={value}"]
    return flags


def mounts(container: dict, volumes: dict[str, dict], issuer: Path) -> list[str]:
    flags = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            flags += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
        elif volume.get("configMap", {}).get("name") == "dev-issuer-jwks":
            flags += ["-v", f"{issuer}:{mount['mountPath']}:ro"]
        else:
            raise SystemExit(f"{container['name']}: cannot mount volume {mount['name']}")
    return flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default="local")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    documents = render(ROOT / "manifests" / "overlays" / "kind")
    config = dict(only(documents, "ConfigMap")["data"])
    pod = only(documents, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    uid = random.randint(1_000_000, 2_000_000_000)
    published = {
        port["containerPort"]: port["containerPort"] + 10000
        for container in pod["containers"]
        for port in container.get("ports", [])
    }
    scratch = Path(tempfile.mkdtemp(prefix="cats-dogs-other-issuer-"))
    issuer = scratch / "dev-issuer"
    devkeys.write_dev_keys(issuer)
    scratch.chmod(0o755)
    issuer.chmod(0o755)
    (issuer / "jwks.json").chmod(0o644)

    names = [f"{POD}-{c['name']}" for c in pod["containers"]]
    docker("rm", "-f", *names, check=False)
    try:
        for index, container in enumerate(pod["containers"]):
            image = f"cats-dogs-other/{container['image'].split('/')[-1].split(':')[0]}:{args.tag}"
            flags = ["--name", f"{POD}-{container['name']}", "--user", f"{uid}:0", "--read-only"]
            flags += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
            if index == 0:  # the first container holds the pod's network namespace
                for inner, outer in published.items():
                    flags += ["-p", f"127.0.0.1:{outer}:{inner}"]
            else:
                flags += ["--network", f"container:{names[0]}"]
            flags += environment(container, config) + mounts(container, volumes, issuer)
            command = container["command"]
            docker(
                "run",
                "-d",
                *flags,
                "--entrypoint",
                command[0],
                image,
                *command[1:],
                *container.get("args", []),
            )
            print(f"started {container['name']} from {image} as uid {uid}, gid 0")
        check_probes(pod, names, published, args.timeout)
        check_inference(published, issuer)
        check_loopback(pod, names[0])
        print("the pod passed every check")
        return 0
    except (AssertionError, subprocess.CalledProcessError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        for name in names:
            print(f"--- {name}\n{docker('logs', '--tail', '60', name, check=False).stderr}")
        return 1
    finally:
        docker("rm", "-f", *names, check=False)


def probe_once(name: str, probe: dict, container: dict, published: dict[int, int]) -> bool:
    if "exec" in probe:
        return docker("exec", name, *probe["exec"]["command"], check=False).returncode == 0
    port = probe["httpGet"]["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    if port not in published:
        return False  # not a port the pod exposes beyond loopback: the kubelet cannot reach it
    try:
        url = f"http://127.0.0.1:{published[port]}{probe['httpGet']['path']}"
        return httpx.get(url, timeout=5).status_code < 400
    except httpx.HTTPError:
        return False


def check_probes(pod: dict, names: list[str], published: dict[int, int], timeout: float) -> None:
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        for name, container in zip(names, pod["containers"], strict=True):
            if kind not in container:
                continue
            deadline = time.monotonic() + timeout
            while not probe_once(name, container[kind], container, published):
                state = docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()
                assert state == "running", f"{name} is {state}"
                assert time.monotonic() < deadline, f"{name} {kind} never succeeded"
                time.sleep(1)
            print(f"{container['name']} {kind}: ok")


def check_inference(published: dict[int, int], issuer: Path) -> None:
    token = devkeys.dev_token(issuer, "get::prediction", 600)
    check_pod(f"http://127.0.0.1:{published[9080]}", f"127.0.0.1:{published[9081]}", token)


def check_loopback(pod: dict, namespace_holder: str) -> None:
    tables = {
        name: docker("exec", namespace_holder, "cat", f"/proc/net/{name}").stdout
        for name in ("tcp", "tcp6")
    }
    predictor = next(c for c in pod["containers"] if c["name"] == "predictor")
    ports = [int(a.split("=")[1]) for a in predictor["args"] if a.startswith("--") and "port=" in a]
    for port in ports:
        where = listening_addresses(port, tables)
        assert where == {"127.0.0.1"}, f"predictor port {port} listens on {where}"
    print(f"predictor ports {ports} listen on 127.0.0.1 only inside the pod")


if __name__ == "__main__":
    sys.exit(main())
