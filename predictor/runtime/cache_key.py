"""The compiled-model cache's key: a digest of everything a load's decisions depend on.

An entry (compiled_cache.py) is valid for exactly the inputs that decided it: the model file,
the options (runtime, precision, threads, batch size, calibration photos), the CPU (its model
and flags), the versions of OpenVINO, NNCF, TensorFlow, Keras and Pillow, and the predictor's
own code that decides. Any of these changed, the key changes and the next start decides afresh.

"The code that decides" is `DECIDING`, the modules whose code shapes what an entry holds, and
every module of the predictor they import (at the top, inside a function or for type checking),
found by reading their sources with `ast` (`deciding_modules`). So a module the decision comes
to use joins the key without anyone listing it, and one it does not use (the REST routes, the
OpenAPI document, the server) can change without re-deciding every pod's model at its next start.
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from ..precision.guard import cpu_flags

FORMAT = 1  # bump when what an entry holds, or how it is read, changes
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the predictor's package: predictor/

# The modules whose code shapes what an entry holds; what they import is added to them.
DECIDING = (
    "predictor.runtime.deciding",  # the cold load: runtime, then precision, then batch size
    "predictor.runtime.runtimes",  # the runtime choice: conversion, the 1e-4 check, compiling
    "predictor.runtime.measure",  # images per second, the batch size that pays
    "predictor.runtime.decisions",  # what is kept of a decision, and how it reads back
    "predictor.runtime.compiled_cache",  # how the model is written (FP32 weights) and read
    "predictor.precision.guard",  # the verdict a reduced precision must pass
    "predictor.precision.quantize",  # NNCF's settings
    "predictor.precision.calibration",  # which photos calibrate, which are held out
    "predictor.imaging",  # the photos decoded as a request's are
    "predictor.contract",  # the model's shape and the course's means
)


def key(**inputs: object) -> str:
    """The entry's name: a digest of what the decisions depend on (`inputs`: the model's
    SHA-256, threads, options...) plus the CPU, the software versions and the deciding code."""
    material = {
        **{name: str(value) for name, value in inputs.items()},
        "format": FORMAT,
        "cpu": cpu_model(),
        "cpu_flags": hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16],
        "openvino": _version("openvino"),
        "nncf": _version("nncf"),
        "tensorflow": _version("tensorflow-cpu"),
        "keras": _version("keras"),
        "pillow": _version("pillow"),  # decodes the calibration photos
        "code": code_digest(),
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def cpu_model() -> str:
    """The CPU's model name (an entry measured on one CPU says nothing about another)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()  # not platform.processor(): it runs `uname -p`, a child


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def code_digest(package_dir: Path | None = None) -> str:
    """A digest of the sources of `deciding_modules`, each by its dotted name."""
    digest = hashlib.sha256()
    for name, path in deciding_modules(package_dir or PACKAGE_DIR).items():
        data = path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()[:16]


def deciding_modules(package_dir: Path, roots: tuple[str, ...] = DECIDING) -> dict[str, Path]:
    """`roots` and every module of the package they import, directly or not: name -> file, by
    name. A root that is not a module of the package is a KeyError: a list gone stale fails
    the tests (tests/predictor/runtime/test_cache_key.py), never drops a module silently."""
    if missing := [root for root in roots if not _is_module(package_dir, root)]:
        raise KeyError(f"not modules of {package_dir}: {', '.join(missing)}")
    found: dict[str, Path] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name not in found:
            found[name] = _module_file(package_dir, name)
            pending.extend(_imported(name, found[name], package_dir))
    return dict(sorted(found.items()))


def _module_file(package_dir: Path, name: str) -> Path:
    """Where module `name` (`predictor.x.y`) is: x/y.py, or x/y/__init__.py for a package."""
    parts = name.split(".")[1:]
    path = package_dir.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_module(package_dir: Path, name: str) -> bool:
    return name.split(".")[0] == package_dir.name and _module_file(package_dir, name).is_file()


def _imported(name: str, path: Path, package_dir: Path) -> Iterator[str]:
    """The modules of the package that module `name` (at `path`) imports anywhere in it: a
    name taken from a module counts as that module, one taken from a package's `__init__` as
    that package (tests/predictor/test_import_graph.py reads the graph the same way)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if _is_module(package_dir, a.name))
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # relative: from the module's own package, one level up per extra dot
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                source = f"{package}.{node.module}" if node.module else package
            for alias in node.names:
                if _is_module(package_dir, f"{source}.{alias.name}"):
                    yield f"{source}.{alias.name}"
                elif _is_module(package_dir, source):
                    yield source
