"""A real Prometheus on loopback, scraping what a rendered PodMonitor describes, as the
Prometheus operator would configure it: one scrape job per `podMetricsEndpoints` entry, the
target labelled as the operator labels a pod's (namespace, pod, container, endpoint), then the
entry's own relabelings. Its rule file is the rendered PrometheusRule's."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from .manifests import VARIANTS, only, render
from .servers import free_port


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def scrape_configs(
    monitor: dict, port_numbers: dict[str, int], pod: str, container: str
) -> list[dict]:
    """Prometheus scrape jobs for a PodMonitor whose pod runs here: its named ports resolved
    to `port_numbers` on 127.0.0.1. The operator's own labels come first, the entry's
    relabelings after them, as the operator orders them."""
    jobs = []
    for index, endpoint in enumerate(monitor["spec"]["podMetricsEndpoints"]):
        labels = {
            "namespace": "local",
            "pod": pod,
            "container": container,
            "endpoint": endpoint["port"],
        }
        jobs.append(
            {
                "job_name": f"podMonitor/local/{monitor['metadata']['name']}/{index}",
                "metrics_path": endpoint.get("path", "/metrics"),
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port_numbers[endpoint['port']]}"], "labels": labels}
                ],
                "relabel_configs": [
                    {_snake(key): value for key, value in rule.items()}
                    for rule in endpoint.get("relabelings", [])
                ],
            }
        )
    return jobs


class Prometheus:
    def __init__(self, workdir: Path, scrape: list[dict], rules: dict | None = None):
        binary = shutil.which("prometheus")
        assert binary, "prometheus is needed (make venv installs Debian's prometheus package)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape,
        }
        if rules is not None:
            (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
            config["rule_files"] = [str(workdir / "rules.yaml")]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self, limit: float = 30) -> None:
        started = time.monotonic()
        while time.monotonic() - started < limit:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> list[dict]:
        answer = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        """Each series of `expr` over [start, end] (Unix seconds): its labels and [t, value]s."""
        answer = httpx.get(
            self.url + "/api/v1/query_range",
            params={"query": expr, "start": start, "end": end, "step": step},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def targets(self) -> list[dict]:
        answer = httpx.get(self.url + "/api/v1/targets", timeout=10)
        return answer.json()["data"]["activeTargets"]

    def rules(self) -> list[dict]:
        """Every rule loaded, with its `health`, `state` and `lastEvaluation`."""
        answer = httpx.get(self.url + "/api/v1/rules", timeout=10)
        return [rule for group in answer.json()["data"]["groups"] for rule in group["rules"]]

    def wait_for(self, expr: str, limit: float = 20) -> list[dict]:
        """The query's result once it is not empty (scrapes are every second)."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"no result for {expr} within {limit:g} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def prometheus_of_pod(local, workdir: Path, rules: dict | None = None) -> Prometheus:
    """A Prometheus scraping a LocalPod (support/local_pod.py) as the rendered PodMonitor
    says, evaluating `rules` (the rendered PrometheusRule's spec unless given)."""
    monitored = render(VARIANTS["default"])  # every variant's pod is the same pod
    ports = {p["name"]: p["containerPort"] for p in local.container("auth-proxy")["ports"]}
    monitor = only(monitored, "PodMonitor")
    return Prometheus(
        workdir,
        scrape_configs(monitor, ports, pod="cats-dogs-other-local", container="auth-proxy"),
        rules=rules or only(monitored, "PrometheusRule")["spec"],
    )
