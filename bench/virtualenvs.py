"""The benches' own virtualenvs (the peers' servers, matplotlib for the plots), made from pinned
requirements files on first use and remade when that file changes, under
~/.cache/cats-dogs-other/ ($XDG_CACHE_HOME is honoured): what a bench needs beside .venv stays
out of .venv and out of the repository."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from support.servers import ROOT


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cats-dogs-other"


def ensure(requirements: Path, venv: Path) -> Path:
    """The virtualenv `venv`, made from `requirements` with this Python's version unless it
    already was (a stamp in it holds the file's digest); pip's output is shown."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / ".requirements-sha256"
    shown = requirements.relative_to(ROOT) if requirements.is_relative_to(ROOT) else requirements
    if stamp.exists() and stamp.read_text().strip() == digest:
        print(f"venv {venv.name}: {venv} (up to date with {shown})")
        return venv
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    steps = [
        [str(base), "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off",
         "-r", str(requirements)],
    ]  # fmt: skip
    print(f"venv {venv.name}: creating {venv} from {shown} (minutes)")
    for step in steps:
        print("  $ " + " ".join(step), flush=True)
        subprocess.run(step, check=True)
    stamp.write_text(digest + "\n")
    return venv
