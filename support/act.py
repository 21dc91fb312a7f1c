"""Our GitHub workflows run by nektos/act on this machine, as GitHub's runner would run them.

act runs each job on the host (`-P ubuntu-24.04=-self-hosted`), in a workspace of its own, as
the user running it; every `run:` step of ours executes as written. The third-party actions are
served by minimal stand-ins (tools/workflows/stand-ins/) through `--local-repository`, offline:
checkout copies a clean clone of the commit, setup-python finds the Python placed in act's tool
cache, the registry login logs in to nothing. Used by tests/workflows/ (`make workflows`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import yaml

from .servers import ROOT

STAND_INS = ROOT / "tools" / "workflows" / "stand-ins"
# owner/name of each third-party action -> its stand-in's folder
STAND_IN_FOR = {
    "actions/checkout": "checkout",
    "actions/setup-python": "setup-python",
    "docker/login-action": "login",
}
PLATFORM = "ubuntu-24.04=-self-hosted"
REPOSITORY = "cats-dogs-other/cats-dogs-other"  # what github.repository says in the rehearsal
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def actions_used(path: Path) -> set[str]:
    """Every `uses: owner/name@ref` in one workflow file."""
    found = set()
    for job in yaml.safe_load(path.read_text())["jobs"].values():
        found.update(step["uses"] for step in job.get("steps", []) if "uses" in step)
    return found


def local_repositories(path: Path) -> list[str]:
    """act's `--local-repository` arguments: each action the workflow uses, by its stand-in."""
    arguments = []
    for uses in sorted(actions_used(path)):
        name = uses.split("@", 1)[0]
        if name not in STAND_IN_FOR:
            raise LookupError(f"{uses}: no stand-in in {STAND_INS} (add one)")
        arguments += ["--local-repository", f"{uses}={STAND_INS / STAND_IN_FOR[name]}"]
    return arguments


def place_python(tool_cache: Path) -> Path:
    """This interpreter where setup-python looks: <tool cache>/Python/<X.Y.Z>/x64 and
    x64.complete. A Python installed under a private prefix (pyenv's) is copied without its
    site-packages; a system one (/usr) is linked."""
    version = ".".join(map(str, sys.version_info[:3]))
    target = tool_cache / "Python" / version / "x64"
    if (target.parent / "x64.complete").is_file():
        return target
    base = Path(sys.base_prefix)
    shutil.rmtree(target, ignore_errors=True)
    if base in (Path("/usr"), Path("/usr/local")):
        (target / "bin").mkdir(parents=True)
        real = Path(sys._base_executable).resolve()
        for name in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
            (target / "bin" / name).symlink_to(real)
    else:
        site = Path(sysconfig.get_paths(vars={"base": str(base)})["purelib"]).name
        shutil.copytree(
            base,
            target,
            symlinks=True,
            ignore=lambda folder, names: [n for n in names if n == site and "python3" in folder],
        )
    (target.parent / "x64.complete").touch()
    return target


def clean_clone(destination: Path) -> Path:
    """A clone of this checkout's HEAD on branch main (what the workflows see on GitHub)."""
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(destination)], check=True
    )
    subprocess.run(["git", "-C", str(destination), "checkout", "--quiet", "-B", "main"], check=True)
    # act names the repository after the clone's remote (github.repository in the workflows).
    origin = f"https://github.com/{REPOSITORY}.git"
    git = ["git", "-C", str(destination)]
    subprocess.run([*git, "remote", "set-url", "origin", origin], check=True)
    ca = ROOT / "build-ca"
    if ca.is_dir():  # this machine's CA bundle for the image builds (tools/build_images.sh)
        shutil.copytree(ca, destination / "build-ca")
    return destination


@dataclass
class Run:
    returncode: int
    output: str


def act(
    clone: Path,
    workflow: str,
    event: str,
    job: str,
    *,
    event_payload: dict | None = None,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    log: Path,
    timeout: float,
) -> Run:
    """Run one job of one workflow with act in `clone`; its output goes to `log` as it comes
    (and is returned without colours)."""
    work = log.parent
    workflow_file = clone / ".github" / "workflows" / workflow  # what act runs: the clone's
    args = [
        str(Path(sys.executable).parent / "act"),
        event,
        "--workflows",
        str(workflow_file),
        "--job",
        job,
        "-P",
        PLATFORM,
        "--action-offline-mode",
        # act would otherwise skip actions/checkout and copy the tracked files itself.
        "--no-skip-checkout",
        "--no-cache-server",
        # Nothing is masked in the log, so a test can see a secret that leaks into it.
        "--insecure-secrets",
        *local_repositories(workflow_file),
    ]
    if event_payload is not None:
        (work / f"{job}-event.json").write_text(json.dumps(event_payload))
        args += ["--eventpath", str(work / f"{job}-event.json")]
    for flag, values in (("--secret-file", secrets), ("--var-file", variables)):
        if values:
            path = work / f"{job}-{flag.removeprefix('--')}.env"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.writelines(f"{k}={v}\n" for k, v in values.items())
            args += [flag, str(path)]
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "WORKFLOWS"))},
        "ACT_CHECKOUT_SOURCE": str(clone),
        **(env or {}),
    }
    with open(log, "w") as out:
        done = subprocess.run(
            args,
            cwd=clone,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    return Run(done.returncode, ANSI.sub("", log.read_text(errors="replace")))


def summary_line(output: str) -> str | None:
    """pytest's closing line inside a job's output ("N passed, ... in Ns"), act's prefix cut."""
    found = re.findall(r"(\d+ (?:passed|failed)(?:, \d+ \w+)* in [\d.]+s(?: \([\d:]+\))?)", output)
    return found[-1] if found else None
