"""The compiled-model cache's key (predictor/runtime/cache_key.py): every input changes it, and
of the predictor's code exactly what decides does: the modules `DECIDING` names and what they
import. Edits are made to a copy of the package, never to the real one."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from predictor.runtime import cache_key
from support.imports import import_graph

pytestmark = pytest.mark.unit

BASE = {"model": "a" * 64, "runtime": "auto", "precision": "int8", "threads": 2, "photos": "p"}


def test_the_key_changes_with_each_input():
    keys = {cache_key.key(**BASE)}
    for name, other in [
        ("model", "b" * 64),
        ("runtime", "openvino"),
        ("precision", "fp32"),
        ("threads", 4),
        ("photos", "q"),
    ]:
        keys.add(cache_key.key(**{**BASE, name: other}))
    assert len(keys) == 6
    assert cache_key.key(**BASE) == cache_key.key(**BASE)


def test_the_deciding_code_is_the_decision_and_what_it_imports_not_the_server():
    modules = set(cache_key.deciding_modules(cache_key.PACKAGE_DIR))
    assert set(cache_key.DECIDING) <= modules
    assert {
        "predictor.runtime.base",  # imported by runtimes, measure, deciding
        "predictor.sources.cache",  # calibration reads the photos with it
    } <= modules
    for unrelated in [
        "predictor.model",
        "predictor.server",
        "predictor.settings",
        "predictor.batching",
        "predictor.metrics",
        "predictor.runtime.loading",  # the steps around the decision, not the decision
        "predictor.runtime.cache_key",
        "predictor.rest.openapi",
    ]:
        assert unrelated not in modules


def test_the_modules_are_those_the_import_graph_reaches():
    """cache_key.py reads imports as support/imports.py does (the predictor's image ships
    without support/): both reach the same modules from the same roots."""
    graph = import_graph(cache_key.PACKAGE_DIR)
    reached, pending = set(), list(cache_key.DECIDING)
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending.extend(graph[name])
    assert set(cache_key.deciding_modules(cache_key.PACKAGE_DIR)) == reached


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """A copy of the predictor's sources, which the key is computed from from now on."""
    copy = tmp_path / "predictor"
    for path in cache_key.PACKAGE_DIR.rglob("*.py"):
        target = copy / path.relative_to(cache_key.PACKAGE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    before = cache_key.key(**BASE)
    monkeypatch.setattr(cache_key, "PACKAGE_DIR", copy)
    assert cache_key.key(**BASE) == before  # the same sources: the same key
    return copy


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


@pytest.mark.parametrize(
    "module",
    [
        "runtime/deciding.py",
        "runtime/runtimes.py",
        "runtime/measure.py",
        "runtime/decisions.py",
        "runtime/compiled_cache.py",
        "precision/guard.py",
        "precision/quantize.py",
        "precision/views.py",  # not listed: imported by quantize.py
        "precision/calibration.py",
        "imaging.py",
        "contract.py",
        "sources/cache.py",  # not listed: imported by calibration.py
    ],
)
def test_an_edit_to_the_deciding_code_changes_the_key(package, module):
    before = cache_key.key(**BASE)
    edit(package / module)
    assert cache_key.key(**BASE) != before


@pytest.mark.parametrize(
    "module",
    ["rest/openapi.py", "rest/routes.py", "model.py", "server.py", "runtime/loading.py"],
)
def test_an_edit_elsewhere_keeps_the_key(package, module):
    before = cache_key.key(**BASE)
    edit(package / module)
    assert cache_key.key(**BASE) == before


def test_a_module_the_decision_comes_to_import_joins_the_key(package):
    before = cache_key.key(**BASE)
    edit(package / "batching.py")
    assert cache_key.key(**BASE) == before
    guard = package / "precision" / "guard.py"
    guard.write_text(guard.read_text() + "\n\ndef later():\n    from .. import batching\n")
    with_import = cache_key.key(**BASE)
    edit(package / "batching.py")
    assert cache_key.key(**BASE) != with_import


def test_a_listed_module_that_is_gone_is_an_error_not_a_smaller_key(package):
    with pytest.raises(KeyError, match=r"predictor\.precision\.gone"):
        cache_key.deciding_modules(package, ("predictor.precision.gone",))
    (package / "precision" / "quantize.py").rename(package / "precision" / "quantizing.py")
    with pytest.raises(KeyError, match=r"predictor\.precision\.quantize"):
        cache_key.key(**BASE)


def test_a_cpu_without_a_model_name_is_keyed_in_process(tmp_path, monkeypatch):
    """cache_key.cpu_model() where /proc/cpuinfo has no "model name" (AArch64): the machine,
    not platform.processor(), whose `uname -p` is a child process (refused here)."""
    given = tmp_path / "cpuinfo"
    given.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd aes bf16\n")

    def opening(path, *args, **kwargs):
        return open(given if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(cache_key, "open", opening, raising=False)  # cache_key's own `open` only
    monkeypatch.setattr(platform, "_uname_cache", None)  # uname asked afresh, not remembered
    assert cache_key.cpu_model() == platform.machine()
