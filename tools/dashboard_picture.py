"""Draw the dashboard (manifests/dashboard/cats-dogs-other.json) as a picture from a real run,
for the docs: the pod as `make serve` runs it (the demo model behind the auth proxy), a real
Prometheus scraping it as the PodMonitor says and evaluating the PrometheusRule, and a stream
of course photos through the proxy: first photos drawn from the reference folder (a stream like
the baseline) for a third of the run, then others only. Every query of every panel is run over
the run (`query_range`) and drawn where the panel's `gridPos` puts it, with its legend format.

    .venv/bin/python -m tools.dashboard_picture                 # docs/dashboard.png, ~9 min
    .venv/bin/python -m tools.dashboard_picture --minutes 4 --out /tmp/dashboard.png

It takes the pod's ports (9080-9082, 8080-8081): stop `make serve` first. Grafana and the
OpenShift console draw the same queries in their own style; this is their data, not their look.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from auth_proxy import devkeys
from support.clients import send_photos
from support.images import labelled_course_photos
from support.local_pod import LocalPod
from support.manifests import ROOT, only, render
from support.podcheck import check_pod
from support.prometheus import Prometheus, prometheus_of_pod

DASHBOARD = ROOT / "manifests" / "dashboard" / "cats-dogs-other.json"
OUT = ROOT / "docs" / "dashboard.png"
NAMESPACE = "local"  # the namespace label support/prometheus.py gives the pod's targets


@dataclass(frozen=True)
class Series:
    legend: str
    times: list[float]  # seconds since the run started
    values: list[float]


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    grid: tuple[int, int, int, int]  # x, y, w, h in Grafana's 24-column grid
    series: tuple[Series, ...]


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: `{{name}}` replaced by the series' label."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def panels_of(dashboard: dict, prometheus: Prometheus, start: float, end: float) -> list[Panel]:
    """Each graph panel with its targets' series over [start, end]."""
    drawn = []
    step = max(5.0, (end - start) / 200)
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        series = []
        for target in panel["targets"]:
            expr = target["expr"].replace("$namespace", NAMESPACE)
            for result in prometheus.query_range(expr, start, end, step):
                points = [(float(t) - start, float(v)) for t, v in result["values"]]
                series.append(
                    Series(
                        legend(target.get("legendFormat", ""), result["metric"]),
                        [t for t, _ in points],
                        [v for _, v in points],
                    )
                )
        grid = panel["gridPos"]
        drawn.append(
            Panel(
                panel["title"],
                panel["yaxes"][0]["format"],
                (grid["x"], grid["y"], grid["w"], grid["h"]),
                tuple(series),
            )
        )
    return drawn


def draw(panels: list[Panel], title: str, shift_at: float, out: Path) -> None:
    """The panels on one figure, laid out as the dashboard's grid lays them out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    rows = max(p.grid[1] + p.grid[3] for p in panels)
    figure = plt.figure(figsize=(18, rows * 0.42 + 0.8))
    figure.suptitle(title, fontsize=12)
    for panel in panels:
        x, y, w, h = panel.grid
        axis = figure.add_axes(
            (
                x / 24 + 0.035,
                1 - (y + h) / rows * 0.93 - 0.015,
                w / 24 - 0.05,
                h / rows * 0.93 - 0.05,
            )
        )
        for one in panel.series:
            axis.plot([t / 60 for t in one.times], one.values, label=one.legend, linewidth=1.2)
        axis.axvline(shift_at / 60, color="grey", linestyle=":", linewidth=1)
        axis.set_title(panel.title, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.set_xlabel("minutes (dotted: only others from here)", fontsize=7)
        if panel.unit == "percentunit":
            axis.yaxis.set_major_formatter(PercentFormatter(1.0))
        elif panel.unit == "bytes":
            axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 2**20:.0f} MiB"))
        axis.grid(alpha=0.3)
        if panel.series:
            axis.legend(fontsize=6, loc="best")
    figure.savefig(out, dpi=90)


def stream(target: str, token: str, rest: str, seconds: float, photos: list[bytes]) -> None:
    """Photos through the proxy for `seconds`, a call of 8 every fifth of a second, and the pod's
    checks every 20 s (probes, refusals, an upload: the traffic and error panels' data)."""
    draw_photos = random.Random(28)
    ends = time.monotonic() + seconds
    checked = 0.0
    while time.monotonic() < ends:
        send_photos(target, token, draw_photos.choices(photos, k=8), per_request=8)
        if time.monotonic() - checked > 20:
            check_pod(rest, target, token, say=lambda _: None)
            checked = time.monotonic()
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=8, help="the run: a third like the reference, then others"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    documents = render(ROOT / "manifests" / "overlays" / "kind")
    config = dict(only(documents, "ConfigMap")["data"])
    pod_spec = only(documents, "Deployment")["spec"]["template"]["spec"]
    dashboard = json.loads(DASHBOARD.read_text())
    photos = labelled_course_photos()
    reference = [path.read_bytes() for path, _ in photos]
    others = [path.read_bytes() for path, truth in photos if truth == "other"]
    with tempfile.TemporaryDirectory(prefix="cats-dogs-other-dashboard-") as scratch:
        workdir = Path(scratch)
        pod = LocalPod(pod_spec, config, workdir)
        pod.volumes["dev-issuer"] = workdir / "dev-issuer"
        devkeys.write_dev_keys(pod.volumes["dev-issuer"])
        token = devkeys.dev_token(pod.volumes["dev-issuer"], "get::prediction", 7200)
        pod.start()
        prometheus = None
        try:
            pod.wait_for("predictor", "startupProbe", limit=600)
            pod.wait_for("auth-proxy", "readinessProbe", limit=120)
            (workdir / "prometheus").mkdir()
            prometheus = prometheus_of_pod(pod, workdir / "prometheus")
            prometheus.wait_for("count(up == 1) == 2")
            target, rest = "127.0.0.1:9081", "http://127.0.0.1:9080"
            start = time.time()
            like, shifted = args.minutes * 20, args.minutes * 40
            print(f"{like:.0f} s of photos like the reference ones, then {shifted:.0f} s of others")
            stream(target, token, rest, like, reference)
            shift_at = time.time() - start
            stream(target, token, rest, shifted, others)
            time.sleep(5)
            panels = panels_of(dashboard, prometheus, start, time.time())
        finally:
            if prometheus is not None:
                prometheus.stop()
            pod.stop()
    empty = [p.title for p in panels if not p.series]
    draw(panels, dashboard["title"], shift_at, args.out)
    print(f"wrote {args.out}" + (f"; panels without data: {', '.join(empty)}" if empty else ""))


if __name__ == "__main__":
    main()
