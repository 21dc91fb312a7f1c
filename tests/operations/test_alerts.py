"""The PrometheusRule's alerts, run by Prometheus's own `promtool`: the rendered rules are
valid PromQL, and each alert fires on the series it is meant for (alerts_test.yaml) and not on
a healthy pod's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support.manifests import VARIANTS, only, render

TESTS = Path(__file__).with_name("alerts_test.yaml")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is needed (make venv installs Debian's prometheus package)"
    return found


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    rule = only(render(VARIANTS["default"]), "PrometheusRule")
    (folder / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(TESTS, folder / TESTS.name)
    return folder


def test_the_rules_are_valid_promql(rules):
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules / "rules.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_when_it_should_and_only_then(rules):
    result = subprocess.run(
        [promtool(), "test", "rules", TESTS.name], cwd=rules, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        t["alertname"]
        for c in yaml.safe_load(TESTS.read_text())["tests"]
        for t in c.get("alert_rule_test", [])
    }
    rendered = yaml.safe_load((rules / "rules.yaml").read_text())
    defined = {r["alert"] for g in rendered["groups"] for r in g["rules"] if "alert" in r}
    assert tested == defined


def test_every_alert_has_a_runbook_in_the_operations_page():
    page = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    runbook = page[page.index("\n## Alerts and runbook\n") :]
    runbook = runbook[: runbook.index("\n## ", 1)]
    rule = only(render(VARIANTS["default"]), "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for alert in (r["alert"] for r in group["rules"] if "alert" in r):
            assert f"\n| `{alert}` " in runbook, f"docs/operations.md: no runbook row for {alert}"


@pytest.mark.parametrize("variant", ["default", "kserve"])
def test_the_monitored_variants_carry_the_same_rules(variant):
    rule = only(render(VARIANTS[variant]), "PrometheusRule")
    assert rule["spec"] == only(render(VARIANTS["default"]), "PrometheusRule")["spec"]
