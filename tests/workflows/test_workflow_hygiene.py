"""The workflows as OpenSSF Scorecard reads them, and as a reviewer wants them: third-party
actions pinned by commit (the tag in a comment), no git credential left in a workspace, no
secret on a command line, a manual deploy from main only, one job per question, and the
Makefile targets those jobs run. Read, not run (what they run, run: test_scripts_run.py)."""

from __future__ import annotations

import re

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
    """The test job runs the README's `make test` as written, the whole suite, the unit tests
    too: .ci/run runs that job alone (make workflows JOBS="test ..."), not the unit job."""
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yaml").read_text())["jobs"]
    assert list(jobs) == ["lint", "unit", "test", "images", "workflows"]
    commands = {name: [s.get("run", "") for s in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in commands["lint"]
    assert "make unit" in commands["unit"]
    assert "make test" in commands["test"]
    assert "make workflows JOBS=deploy" in commands["workflows"]


def recipe(target: str) -> list[str]:
    """The commands of a Makefile target, as written."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert match, f"no target {target}"
    return [line.strip() for line in match.group(1).splitlines()]


def test_make_unit_runs_the_unit_marker_and_make_test_everything():
    assert recipe("unit") == ["$(PY) -m pytest -m unit -q"]
    [suite] = [line for line in recipe("test") if " -m pytest" in line]
    assert suite == "$(PY) -m pytest"  # no marker: every test, the unit ones included


def test_the_workflow_deploys_with_the_script():
    workflow = (ROOT / ".github" / "workflows" / "deploy.yaml").read_text()
    assert "tools/deploy.sh" in workflow
    assert "kubectl apply -k" not in workflow and "rollout status" not in workflow


@pytest.mark.parametrize("workflow", ["ci.yaml", "deploy.yaml"])
def test_every_action_the_rehearsal_runs_has_a_stand_in(workflow):
    path = ROOT / ".github" / "workflows" / workflow
    arguments = act.local_repositories(path)
    used = act.actions_used(path)
    assert len(arguments) == 2 * len(used)
    for uses in used:
        folder = act.STAND_INS / act.STAND_IN_FOR[uses.split("@")[0]]
        assert (folder / "action.yml").is_file()


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
