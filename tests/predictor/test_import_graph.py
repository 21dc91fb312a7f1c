"""The predictor's modules import one another without a cycle, and only by public names; the
benchmarks' modules (bench/, read as one package) without a cycle too. Every import counts,
under `if TYPE_CHECKING:` and inside functions as well (`support.imports` reads them with
`ast`): a cycle hidden that way still ties two modules together."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.imports import cycles, describe, import_graph, module_files

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PREDICTOR = ROOT / "predictor"
BENCH = ROOT / "bench"


def test_the_predictors_modules_import_one_another_without_a_cycle():
    found = cycles(import_graph(PREDICTOR))
    assert not found, "import cycles in predictor:\n" + describe(found)


def test_the_benchmarks_import_one_another_without_a_cycle():
    found = cycles(import_graph(BENCH))
    assert not found, "import cycles in bench:\n" + describe(found)


def test_the_graph_sees_the_imports_that_once_made_cycles():
    """The imports the cycles went through are read (a graph that missed them would pass the
    tests above for nothing): a function's import, a type-checking one, a bench's."""
    predictor, bench = import_graph(PREDICTOR), import_graph(BENCH)
    runtime = "predictor.runtime"
    assert f"{runtime}.model_file" in predictor[f"{runtime}.runtimes"]  # inside KerasRuntime.load
    assert f"{runtime}.base" in predictor[f"{runtime}.measure"]
    assert f"{runtime}.measure" in predictor[f"{runtime}.runtimes"]
    assert "predictor.precision.quantize" in predictor[f"{runtime}.deciding"]  # in a function
    assert "bench.throughput" in bench["bench.precision"]


def private_imports(package_dir: Path) -> Iterator[str]:
    """Each `from <a module of the package> import _name` in the package (dunders aside)."""
    modules = module_files(package_dir)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = node.module or ""
            if node.level:  # relative: from the module's own package, one level up per dot
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                source = f"{package}.{node.module}" if node.module else package
            if source.partition(".")[0] != package_dir.name:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield f"{name} (line {node.lineno}): from {source} import {alias.name}"


def test_no_module_of_the_predictor_imports_a_private_name_of_another():
    found = list(private_imports(PREDICTOR))
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_a_private_import_is_found_wherever_it_is_written(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def _helper(): ...\nfrom os import _exit\n")
    (package / "sub" / "__init__.py").write_text("def f():\n    from ..a import _helper\n")
    (package / "sub" / "b.py").write_text("from pkg.a import __doc__, _helper as h\n")
    assert sorted(private_imports(package)) == [
        "pkg.sub (line 2): from pkg.a import _helper",
        "pkg.sub.b (line 1): from pkg.a import _helper",
    ]
