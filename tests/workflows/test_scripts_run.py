"""What the Makefile and the workflows run, run here as written: `make serve` and `make unit`
install nothing beyond Python (`make -n`), tools/install_test_tools.sh says in one line what to
install where it cannot, and the deploy job's model_uri step refuses what is not one word.
Child processes (make, bash), so not `unit` (the same files read: test_workflow_hygiene.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from support.servers import ROOT


@pytest.mark.parametrize("target", ["serve", "unit"])
def test_serve_and_unit_install_nothing_beyond_python(target):
    """A student's laptop: `make serve` and `make unit` need Python, pip and kubectl only — no
    root, no apt, no Node, no browser, no Prometheus (those are `make test`'s)."""
    done = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for word in ("apt-get", "sudo", "npm", "install_test_tools", "v2-clients", "chromium"):
        assert word not in done.stdout, f"make {target} runs {word}"
    assert "pip install" in done.stdout
    if target == "serve":
        assert "tests/requirements" not in done.stdout


def test_a_tool_that_cannot_be_installed_gets_one_line_saying_what_to_install(tmp_path):
    """No apt, no sudo, none of the tools: one line per tool, naming it, and a failure."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id"))
    done = subprocess.run(
        [shutil.which("bash"), str(ROOT / "tools" / "install_test_tools.sh")],
        env={"PATH": str(bin_dir)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 3, done.stderr
    for line, what in zip(lines, ("Node.js >= 20.12", "Prometheus", "Chromium"), strict=True):
        assert line.startswith(f"make test needs {what}") and "install it by hand" in line


def resolve_step() -> str:
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yaml").read_text())["jobs"]
    return next(s["run"] for s in steps["deploy"]["steps"] if s.get("id") == "model")


@pytest.mark.parametrize(
    "requested",
    ["runs:/abc/model\nEVIL=1", "s3://models/a b.keras", "runs:/abc\tx", "s3://m/\x1b[31mx"],
)
def test_a_manual_model_uri_that_is_not_one_word_is_refused(tmp_path, requested):
    """The manual deploy's input goes into $GITHUB_OUTPUT: a newline there would write a second
    output, a space or a control character a value no source reads. The step, run as written."""
    output = tmp_path / "output"
    output.touch()
    done = subprocess.run(
        ["bash", "-e", "-c", resolve_step()],
        env={"PATH": "/usr/bin:/bin", "REQUESTED": requested, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "model_uri must be one word" in done.stderr
    assert output.read_text() == ""


def test_a_manual_uri_from_another_source_is_served_as_given(tmp_path):
    output = tmp_path / "output"
    output.touch()
    done = subprocess.run(
        ["bash", "-e", "-c", resolve_step()],
        env={
            "PATH": "/usr/bin:/bin",
            "REQUESTED": "s3://models/prod/final_model.keras",
            "GITHUB_OUTPUT": str(output),
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert output.read_text() == "uri=s3://models/prod/final_model.keras\n"
