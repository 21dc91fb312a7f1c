"""The workflows as OpenSSF Scorecard reads them, and as a reviewer wants them: third-party
actions pinned by commit (the tag in a comment), no git credential left in a workspace, no
secret on a command line, a manual deploy from main only, one job per question."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from support import act
from support.servers import ROOT

pytestmark = pytest.mark.unit

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
USES = re.compile(r"^\s*(?:- )?uses: (\S+)(.*)$", re.MULTILINE)


def steps(path):
    for name, job in yaml.safe_load(path.read_text())["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_their_tag_beside(path):
    found = USES.findall(path.read_text())
    assert found
    for uses, comment in found:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*", comment), f"{uses}: tag comment {comment!r}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_checkout_keeps_a_credential(path):
    for job, step in steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, job


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_reach_steps_by_environment_only(path):
    """`${{ secrets.X }}` inside a script is pasted into it, and onto whatever command line it
    runs; through `env:` the shell reads it, and the job's tools take it on stdin or from a file."""
    for job, step in steps(path):
        assert "secrets." not in step.get("run", ""), f"{job}: {step.get('name')}"
    text = path.read_text()
    assert "--token=" not in text and "--password " not in text and "-p $" not in text


def test_a_manual_deploy_runs_from_main_only():
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yaml").read_text())["jobs"]
    condition = " ".join(job["deploy"]["if"].split())
    assert (
        "(github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main')" in condition
    )
    assert job["deploy"]["environment"] == "openshift"


def test_ci_has_one_job_per_question():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yaml").read_text())["jobs"]
    assert list(jobs) == ["lint", "unit", "test", "images", "workflows"]
    commands = {name: [s.get("run", "") for s in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in commands["lint"]
    assert "make unit" in commands["unit"]
    assert "make test" in commands["test"]
    assert "make workflows JOBS=deploy" in commands["workflows"]


@pytest.mark.parametrize("workflow", ["ci.yaml", "deploy.yaml"])
def test_every_action_the_rehearsal_runs_has_a_stand_in(workflow):
    path = ROOT / ".github" / "workflows" / workflow
    arguments = act.local_repositories(path)
    used = act.actions_used(path)
    assert len(arguments) == 2 * len(used)
    for uses in used:
        folder = act.STAND_INS / act.STAND_IN_FOR[uses.split("@")[0]]
        assert (folder / "action.yml").is_file()


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


def test_a_test_dependency_does_not_reinstall_the_predictors():
    """Each install is redone only when its own inputs change: the stamp of the predictor's
    packages does not depend on the test requirements."""
    makefile = (ROOT / "Makefile").read_text()
    runtime = re.search(r"^\$\(RUNTIME\): (.*)$", makefile, re.MULTILINE)
    assert runtime and "tests/" not in runtime.group(1)


@pytest.mark.parametrize(
    "output, line",
    [
        ("[ci/unit]   | 406 passed in 21.88s\n", "406 passed in 21.88s"),
        (
            "[ci/test]   | ==== 1036 passed, 3 skipped in 600.85s (0:10:00) ====\n",
            "1036 passed, 3 skipped in 600.85s (0:10:00)",
        ),
        ("| == 2 failed, 1 passed in 3.0s ==\n| 5 passed in 1.0s\n", "5 passed in 1.0s"),
        ("[ci/lint]   | All checks passed!\n", None),
    ],
)
def test_the_suites_closing_line_is_read_from_a_jobs_output(output, line):
    assert act.summary_line(output) == line


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
