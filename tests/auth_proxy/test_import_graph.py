"""The proxy's modules import one another without a cycle, counting every import: under
`if TYPE_CHECKING:` and inside functions too (`support.imports` reads them with `ast`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.imports import cycles, describe, import_graph

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "auth-proxy" / "auth_proxy"


def test_the_proxys_modules_import_one_another_without_a_cycle():
    graph = import_graph(PACKAGE)
    found = cycles(graph)
    assert not found, "import cycles in auth_proxy:\n" + describe(found)


def test_the_graph_sees_every_kind_of_import_in_the_proxy():
    graph = import_graph(PACKAGE)
    assert "auth_proxy.app" in graph["auth_proxy.__main__"]  # imported inside main()
    assert {"auth_proxy.rest_proxy", "auth_proxy.grpc_proxy"} <= graph["auth_proxy.app"]
    assert "auth_proxy.settings" in graph["auth_proxy.tokens"]


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_cycle_through_type_checking_or_a_function_is_found(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import typing\nif typing.TYPE_CHECKING:\n    from .b import B\n",
            "pkg/b.py": "def f():\n    from pkg import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from . import a\n",
        },
    )
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_relative_imports_resolve_from_the_modules_own_package(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "NAME = 1\n",
            "pkg/top.py": "from .sub import inner\nfrom . import NAME\n",
            "pkg/sub/__init__.py": "from .inner import X\n",
            "pkg/sub/inner.py": "from ..top import y\nfrom .. import top\nX = 1\n",
        },
    )
    graph = import_graph(package)
    assert graph == {
        "pkg": set(),
        "pkg.top": {"pkg.sub.inner", "pkg"},
        "pkg.sub": {"pkg.sub.inner"},
        "pkg.sub.inner": {"pkg.top"},
    }
    assert cycles(graph) == [["pkg.sub.inner", "pkg.top", "pkg.sub.inner"]]


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from . import a, b\n",
            "pkg/a.py": "import os\nfrom .b import f\n",
            "pkg/b.py": "import json\n",
        },
    )
    assert cycles(import_graph(package)) == []
