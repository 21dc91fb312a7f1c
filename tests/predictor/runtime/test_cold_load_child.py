"""The cold load decides in a child process (predictor/runtime/loading.py): a child that dies as
the OOM killer leaves it, or that refuses the model, is one clear error in the parent. Real
children, so not `unit` (moved from tests/predictor/test_memory.py)."""

from __future__ import annotations

import pytest


def test_a_cold_load_child_that_dies_is_one_clear_error(tmp_path):
    from predictor.runtime.base import ModelFileError
    from predictor.runtime.loading import LoadOptions, decide_in_child
    from support import children

    options = LoadOptions(
        choice="auto",
        wanted="fp32",
        threads=1,
        max_batch_size=0,
        cache_dir=tmp_path / "cache",
        calibration_dir=tmp_path / "photos",
        limits=None,
    )
    with pytest.raises(ModelFileError, match=r"exit code 137 \(killed for memory"):
        decide_in_child(tmp_path / "m.keras", "0" * 64, options, target=children.killed)
    with pytest.raises(ModelFileError, match="a test's refusal"):
        decide_in_child(tmp_path / "m.keras", "0" * 64, options, target=children.refusing)
