"""Run a rendered Deployment's pod on this machine, as the kubelet would, from local installs.

Used by the pod test (tests/manifests/test_pod.py) and by `make serve` (tools/serve_pod.py).

Each container's command, args, env and ports come from the manifest: `python3` is this
interpreter, `configMapKeyRef` values come from the rendered ConfigMap (a missing key is an
error, as in Kubernetes), `fieldRef` from `DOWNWARD_API`, each volume becomes a folder and
its mount path is rewritten in the env. The processes get no other variables than PATH, so
nothing from the test's own environment can hide a variable the manifest forgot. Probes run
against their declared ports, named ports resolved in their own container, as the kubelet
resolves them.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class PodError(AssertionError):
    pass


# The pod's fields the downward API gives (`fieldRef`), as a pod in the default namespace has them.
DOWNWARD_API = {"metadata.namespace": "default"}


@dataclass
class LocalPod:
    pod_spec: dict
    config: dict[str, str]
    workdir: Path
    volumes: dict[str, Path] = field(default_factory=dict)  # volume name -> local folder
    secrets: dict[str, str] = field(default_factory=dict)  # Secret key -> value, where given
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def container(self, name: str) -> dict:
        return next(c for c in self.pod_spec["containers"] if c["name"] == name)

    def environment(self, container: dict) -> dict[str, str]:
        mounts = {
            m["mountPath"]: self.volumes[m["name"]] for m in container.get("volumeMounts", [])
        }
        env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
        for entry in container.get("env", []):
            if "value" in entry:
                value = entry["value"]
            elif "configMapKeyRef" in entry.get("valueFrom", {}):
                ref = entry["valueFrom"]["configMapKeyRef"]
                if ref["key"] not in self.config:
                    raise PodError(f"{container['name']}: ConfigMap has no key {ref['key']}")
                value = self.config[ref["key"]]
            elif "secretKeyRef" in entry.get("valueFrom", {}):
                ref = entry["valueFrom"]["secretKeyRef"]
                if ref["key"] in self.secrets:
                    value = self.secrets[ref["key"]]
                elif ref.get("optional"):
                    continue  # no such Secret here: Kubernetes leaves the variable unset
                else:
                    raise PodError(f"{container['name']}: needs Secret key {ref['key']}")
            elif "fieldRef" in entry.get("valueFrom", {}):
                path = entry["valueFrom"]["fieldRef"]["fieldPath"]
                if path not in DOWNWARD_API:
                    raise PodError(f"{container['name']}: no downward-API field {path} here")
                value = DOWNWARD_API[path]
            else:
                raise PodError(f"{container['name']}: unsupported env source for {entry['name']}")
            env[entry["name"]] = self._relocated(value, mounts)
        return env

    @staticmethod
    def _relocated(value: str, mounts: dict[str, Path]) -> str:
        """A path (or file:// URI) under a mount path, moved to the volume's local folder."""
        if not mounts:
            return value
        paths = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
        pattern = re.compile(rf"^(file://)?({paths})(?=/|$)")
        return pattern.sub(lambda m: (m.group(1) or "") + str(mounts[m.group(2)]), value)

    def command(self, argv: list[str]) -> list[str]:
        return [sys.executable if argv[0] in ("python3", "python") else argv[0], *argv[1:]]

    def start(self) -> None:
        for volume in self.pod_spec.get("volumes", []):
            self.volumes.setdefault(volume["name"], self.workdir / "volumes" / volume["name"])
            self.volumes[volume["name"]].mkdir(parents=True, exist_ok=True)
        for container in self.pod_spec["containers"]:
            ports = [p["containerPort"] for p in container.get("ports", [])]
            busy = [p for p in ports if listening_addresses(p)]
            if busy:
                raise PodError(f"ports {busy} are already taken on this machine")
            log = open(self.workdir / f"{container['name']}.log", "wb")  # noqa: SIM115
            self.processes[container["name"]] = subprocess.Popen(
                self.command(container["command"]) + container.get("args", []),
                cwd=Path(__file__).resolve().parents[1],
                env=self.environment(container),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    # -- probes ------------------------------------------------------------------------------

    def resolve_port(self, container: dict, port) -> int:
        if isinstance(port, int):
            return port
        for declared in container.get("ports", []):
            if declared.get("name") == port:
                return declared["containerPort"]
        raise PodError(f"{container['name']}: probe names port {port!r}, not declared in it")

    def probe_once(self, container: dict, probe: dict) -> bool:
        if "httpGet" in probe:
            port = self.resolve_port(container, probe["httpGet"]["port"])
            # The kubelet probes the pod's IP: a port on loopback only is unreachable to it.
            if not listening_addresses(port) & {"0.0.0.0", "::"}:
                return False
            url = f"http://127.0.0.1:{port}{probe['httpGet'].get('path', '/')}"
            try:
                status = httpx.get(url, timeout=probe.get("timeoutSeconds", 1)).status_code
            except httpx.HTTPError:
                return False
            return 200 <= status < 400
        if "exec" in probe:
            result = subprocess.run(
                self.command(probe["exec"]["command"]),
                env=self.environment(container),
                capture_output=True,
                timeout=probe.get("timeoutSeconds", 1) + 5,
                check=False,
            )
            return result.returncode == 0
        raise PodError(f"{container['name']}: unsupported probe {sorted(probe)}")

    def wait_for(self, container_name: str, kind: str, limit: float) -> float:
        """Run a probe as the kubelet does until it succeeds; return the seconds it took."""
        container = self.container(container_name)
        probe = container[kind]
        budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
        started = time.monotonic()
        while time.monotonic() - started < min(budget, limit):
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise PodError(
                        f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}"
                    )
            if self.probe_once(container, probe):
                return time.monotonic() - started
            time.sleep(0.5)
        raise PodError(f"{container_name} {kind} never succeeded: {probe}")


def listening_addresses(port: int, tables: dict[str, str] | None = None) -> set[str]:
    """The local addresses on which some process listens on TCP `port` ("0.0.0.0", "::",
    "127.0.0.1", …), read from /proc/net/tcp{,6}: no packet is sent to find out. `tables`
    gives those files' text from elsewhere (another network namespace)."""
    import ipaddress

    if tables is None:
        tables = {}
        for name in ("tcp", "tcp6"):
            with contextlib.suppress(FileNotFoundError), open(f"/proc/net/{name}") as file:
                tables[name] = file.read()
    found = set()
    for name, text in tables.items():
        width = 16 if name == "tcp6" else 4
        for row in text.splitlines()[1:]:
            fields = row.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            ip = ipaddress.ip_address(raw)
            mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
            found.add(str(mapped or ip))
    return found
