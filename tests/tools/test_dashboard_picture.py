"""The dashboard's JSON is one Grafana and the OpenShift console both draw (panel types both
know, a grid of 24 columns, ids once each), and tools/dashboard_picture.py draws its panels
where their grid puts them, each series named by the panel's legend format."""

from __future__ import annotations

import json

import pytest

from tools.dashboard_picture import DASHBOARD, Panel, Series, draw, legend

pytestmark = pytest.mark.unit


def test_the_dashboard_is_a_grid_of_panels_both_grafana_and_the_console_draw():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert {panel["type"] for panel in panels} == {"row", "graph"}
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert 'namespace="$namespace"' in target["expr"], panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace"}


def test_a_legend_format_names_each_series_by_its_labels():
    assert legend("{{label}} baseline", {"label": "Cat"}) == "Cat baseline"
    assert legend("{{ pod }} {{container}}", {"pod": "p-1", "container": "predictor"}) == (
        "p-1 predictor"
    )
    assert legend("p99", {"le": "0.5"}) == "p99"
    assert legend("{{missing}}", {}) == ""


def test_panels_are_drawn_into_a_png(tmp_path):
    out = tmp_path / "dashboard.png"
    panels = [
        Panel("mix", "percentunit", (0, 1, 12, 8), (Series("Cat", [0, 60], [0.3, 0.4]),)),
        Panel("memory", "bytes", (12, 1, 12, 8), (Series("pod", [0, 60], [2**28, 2**28]),)),
        Panel("empty", "short", (0, 9, 8, 8), ()),
    ]
    draw(panels, "a title", 30, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
