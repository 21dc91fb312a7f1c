"""A kubectl for the deploy script's tests: it records every call and keeps a Deployment's
revision history as the API server does, so the script's logic runs as it would in the cluster.

State (JSON, at $FAKE_KUBECTL_STATE): `revisions` {number: images}, `current` (the revision
serving, or null before the first deploy), `rollouts` (outcomes of the next `rollout status`
calls, true when omitted), `host` (the Route's). `apply -k DIR` renders DIR with the real
kubectl ($REAL_KUBECTL) and makes its images a new revision when they differ from the current
one; `rollout undo --to-revision=N` makes revision N's images a new revision, as Kubernetes
does (and skips it when they are the current ones). `create secret generic --dry-run=client`
is the real kubectl's; `apply -f -` records the kind, name and data keys read from stdin (the
deploy workflow's Secret: never its values). `forbidden`: reading the Deployment
fails; `undo_refused`: every undo fails. Any other call fails, so a test notices a new one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REVISION = "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"


def stand_in(folder: Path, **state) -> tuple[dict[str, str], Path]:
    """This recorder as `kubectl`, in `folder/bin`, with a cluster in `state`: the variables to
    run under (PATH first) and the state file to read afterwards."""
    real = shutil.which("kubectl")
    assert real, "kubectl is needed to render the manifests"
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    root = Path(__file__).resolve().parents[1]
    (bin_dir / "kubectl").write_text(
        f'#!/bin/sh\nPYTHONPATH="{root}" exec "{sys.executable}" -m support.fake_kubectl "$@"\n'
    )
    (bin_dir / "kubectl").chmod(0o755)
    state_file = folder / "cluster.json"
    state_file.write_text(json.dumps({"revisions": {}, "current": None, **state}))
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REAL_KUBECTL": real,
        "FAKE_KUBECTL_STATE": str(state_file),
    }
    return env, state_file


def rendered_images(folder: str) -> list[str]:
    output = subprocess.run(
        [os.environ["REAL_KUBECTL"], "kustomize", folder], check=True, capture_output=True
    ).stdout
    deployment = next(d for d in yaml.safe_load_all(output) if d and d["kind"] == "Deployment")
    return [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]


def new_revision(state: dict, images: list[str]) -> None:
    number = max(map(int, state["revisions"]), default=0) + 1
    state["revisions"][str(number)] = images
    state["current"] = number


def main(args: list[str]) -> int:
    path = Path(os.environ["FAKE_KUBECTL_STATE"])
    # What reads or writes a pipe is done before the state is locked: in `create … | apply -f -`
    # both ends run at once, and a lock held across the pipe would deadlock them.
    piped: dict | int | None = None
    if args[:3] == ["apply", "-f", "-"]:
        piped = yaml.safe_load(sys.stdin)
    elif args[:3] == ["create", "secret", "generic"] and "--dry-run=client" in args:
        # Rendering a Secret needs no cluster: the real kubectl does it, reading our stdin.
        piped = subprocess.run([os.environ["REAL_KUBECTL"], *args]).returncode
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one call's read-modify-write at a time
        state = json.loads(path.read_text())
        code = step(state, args, piped)
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(state))
        staged.replace(path)  # a reader sees the old state or the new, never half of one
    return code


def step(state: dict, args: list[str], piped: dict | int | None) -> int:
    """One call against the recorded cluster: what it prints, its exit code, the new state."""
    state.setdefault("calls", []).append(args)
    code = 0
    current = state.get("current")
    match args:
        case ["get", "deployment/cats-dogs-other", "--ignore-not-found", "-o", jsonpath] if (
            jsonpath == REVISION
        ):
            if state.get("forbidden"):
                print(
                    'Error from server (Forbidden): deployments.apps "cats-dogs-other" is '
                    "forbidden: User cannot get resource",
                    file=sys.stderr,
                )
                code = 1
            elif current is not None:
                print(current, end="")
        case ["apply", "-k", folder]:
            images = rendered_images(folder)
            if current is None or state["revisions"][str(current)] != images:
                new_revision(state, images)
            print("deployment.apps/cats-dogs-other configured")
        case ["rollout", "status", "deployment/cats-dogs-other", timeout] if timeout.startswith(
            "--timeout="
        ):
            outcomes = state.setdefault("rollouts", [])
            if outcomes and not outcomes.pop(0):
                print("error: timed out waiting for the condition", file=sys.stderr)
                code = 1
            else:
                print('deployment "cats-dogs-other" successfully rolled out')
        case ["rollout", "undo", "deployment/cats-dogs-other", to] if to.startswith(
            "--to-revision="
        ):
            wanted = to.split("=", 1)[1]
            if wanted not in state["revisions"] or state.get("undo_refused"):
                print(f"error: unable to find specified revision {wanted}", file=sys.stderr)
                code = 1
            elif state["revisions"][wanted] == state["revisions"][str(current)]:
                print(
                    "deployment.apps/cats-dogs-other skipped rollback "
                    f"(current template already matches revision {wanted})"
                )
            else:
                new_revision(state, state["revisions"][wanted])
                print("deployment.apps/cats-dogs-other rolled back")
        case ["create", "secret", "generic", *_] if isinstance(piped, int):
            code = piped
        case ["apply", "-f", "-"] if isinstance(piped, dict):
            document = piped
            # What was applied, without its values: a Secret's data is recorded by key only.
            state.setdefault("applied", []).append(
                {
                    "kind": document["kind"],
                    "name": document["metadata"]["name"],
                    "keys": sorted(document.get("data") or {}),
                }
            )
            print(f"{document['kind'].lower()}/{document['metadata']['name']} configured")
        case ["get", "route", "cats-dogs-other", "-o", "jsonpath={.spec.host}"]:
            print(state["host"], end="")
        case _:
            print(f"fake kubectl: unexpected call {args}", file=sys.stderr)
            code = 2
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
