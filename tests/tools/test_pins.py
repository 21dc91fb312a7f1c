"""One version per package, wherever it is pinned. `predictor/constraints.txt` (the predictor
image, and every virtual environment here) is the source of truth; the auth-proxy image's own
pins (`auth-proxy/pyproject.toml`, `auth-proxy/constraints.txt`) and the test tools must agree
with it, and the workflows pin nothing themselves: they install with `-c` a constraints file."""

from __future__ import annotations

import re
import tomllib

import pytest

from support.servers import ROOT

pytestmark = pytest.mark.unit

DEPLOY = ROOT / "tools" / "deploy-requirements.txt"
PIN = re.compile(r"^\s*([A-Za-z0-9_.\[\]-]+?)(?:\[[^\]]*\])?==([^\s;#]+)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def pins_in_lines(lines) -> dict[str, str]:
    return {normal(m.group(1)): m.group(2) for line in lines if (m := PIN.match(line))}


def truth() -> dict[str, str]:
    return pins_in_lines((ROOT / "predictor" / "constraints.txt").read_text().splitlines())


def other_pins() -> dict[str, dict[str, str]]:
    project = tomllib.loads((ROOT / "auth-proxy" / "pyproject.toml").read_text())
    return {
        "auth-proxy/pyproject.toml": pins_in_lines(project["project"]["dependencies"]),
        "auth-proxy/constraints.txt": pins_in_lines(
            (ROOT / "auth-proxy" / "constraints.txt").read_text().splitlines()
        ),
        "tests/requirements.txt": pins_in_lines(
            (ROOT / "tests" / "requirements.txt").read_text().splitlines()
        ),
        "tests/requirements-v2-clients.txt": pins_in_lines(
            (ROOT / "tests" / "requirements-v2-clients.txt").read_text().splitlines()
        ),
        "tests/requirements-workflows.txt": pins_in_lines(
            (ROOT / "tests" / "requirements-workflows.txt").read_text().splitlines()
        ),
        "tools/deploy-requirements.txt": pins_in_lines(DEPLOY.read_text().splitlines()),
    }


# tritonclient 2.73 requires ml-dtypes<=0.5.4; it runs in an environment of its own for that
# (tests/requirements-v2-clients.txt says why), the one place a pin may differ.
ALLOWED_TO_DIFFER = {"tests/requirements-v2-clients.txt": {"ml-dtypes"}}


@pytest.mark.parametrize("where", list(other_pins()))
def test_pins_agree_with_the_predictors_constraints(where):
    expected = truth()
    pins = other_pins()[where]
    assert pins, f"no pins read from {where}"
    differ = {
        name: (version, expected[name])
        for name, version in pins.items()
        if name in expected
        and expected[name] != version
        and name not in ALLOWED_TO_DIFFER.get(where, set())
    }
    assert not differ, f"{where} pins differ from predictor/constraints.txt: {differ}"


def test_the_auth_proxy_image_pins_each_of_its_dependencies():
    pins = other_pins()
    direct = pins["auth-proxy/pyproject.toml"]
    assert set(direct) <= set(pins["auth-proxy/constraints.txt"])


def test_the_deploy_jobs_packages_each_carry_their_hashes():
    """The deploy job installs with --require-hashes: each pin of the compiled file has its
    files' SHA-256s, and what it was compiled from is in it."""
    text = DEPLOY.read_text()
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n\n", 1)[1] if "\n\n" in text else text)
    pinned = [entry for entry in entries if PIN.match(entry)]
    assert len(pinned) > 10
    for entry in pinned:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]
    wanted = pins_in_lines((ROOT / "tools" / "deploy-requirements.in").read_text().splitlines())
    assert wanted.items() <= pins_in_lines(text.splitlines()).items()
    assert "--index-url" not in text and "--find-links" not in text  # no machine's own index


def test_workflows_pin_nothing_themselves():
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yaml")):
        text = workflow.read_text().replace("\\\n", " ")  # continuation lines joined
        for command in re.findall(r"pip install[^\n]*", text):
            assert "==" not in command, f"{workflow.name}: {command}"
            assert "-c " in command or "-r " in command, f"{workflow.name}: {command}"
            if "-r tools/deploy-requirements.txt" in command:
                assert "--require-hashes" in command, f"{workflow.name}: {command}"
