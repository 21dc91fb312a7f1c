"""The KServe canary: every private attribute and overridden method `predictor/kserve_glue.py`
relies on still exists in the installed kserve. A KServe upgrade that removes one fails here,
by name, instead of breaking the server at run time."""

from __future__ import annotations

import inspect

import kserve
import pytest

from predictor.kserve_glue import APP, RELIED_ON

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("owner", "name"), RELIED_ON, ids=[f"{owner.__name__}.{name}" for owner, name in RELIED_ON]
)
def test_kserve_still_has(owner, name):
    found = hasattr(owner, name) or f"self.{name} =" in inspect.getsource(owner.__init__)
    assert found, (
        f"kserve {kserve.__version__}: {owner.__module__}.{owner.__name__}.{name} is gone; "
        "predictor/kserve_glue.py relies on it"
    )


def test_kserve_still_has_its_app():
    module, _, attribute = APP.partition(":")
    assert hasattr(__import__(module, fromlist=[attribute]), attribute)
