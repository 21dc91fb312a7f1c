"""The compiled-model cache's entries (predictor/runtime/compiled_cache.py): written whole or
not at all, read back as the `Decisions` and model saved, and a damaged one deleted and read
as none (the load then runs cold). Hostile entries: test_compiled_cache_hostile.py."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import pytest

from predictor.precision.guard import Verdict
from predictor.runtime import compiled_cache
from predictor.runtime.decisions import Decisions

pytestmark = pytest.mark.unit


def tiny_openvino_model():
    """A real OpenVINO model with weights, of the contract's shape ([N, 224, 224, 3] in, [N, 3]
    out: y = the pixels' mean per channel * w): what an entry holds, in miniature."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 224, 224, 3], np.float32, name="x")
    mean = ops.reduce_mean(x, ops.constant(np.array([1, 2])), keep_dims=False)
    weights = ops.constant(np.arange(3, dtype=np.float32) + 1)
    return ov.Model([ops.multiply(mean, weights)], [x], "tiny")


INT8 = Verdict("int8", True, 1.0, 0.9539, 0.9, 0.9, 56, "")
GOOD = Decisions(runtime="openvino", precision="int8", max_batch_size=8, verdicts=(INT8,))


def saved(tmp_path, decisions=GOOD) -> compiled_cache.Entry:
    entry = compiled_cache.Entry.under(tmp_path, "k")
    entry.save(decisions, tiny_openvino_model() if decisions.runtime == "openvino" else None)
    assert entry.folder.is_dir()
    return entry


def test_an_entry_is_written_whole_and_read_back(tmp_path):
    entry = saved(tmp_path)
    cached = entry.read()
    assert cached is not None and cached.decisions == GOOD
    on_disk = json.loads((entry.folder / "decisions.json").read_text())
    assert set(on_disk["files"]) == {"model.xml", "model.bin"}
    assert {k: v for k, v in on_disk.items() if k != "files"} == GOOD.to_json()
    import openvino as ov

    compiled = ov.Core().compile_model(cached.model, "CPU")
    assert list(compiled([np.ones((1, 224, 224, 3), np.float32)])[0][0]) == [1, 2, 3]
    assert [p.name for p in (tmp_path / "compiled").iterdir()] == ["k"]  # no staging left


def test_a_tensorflow_entry_holds_its_decisions_only(tmp_path):
    tensorflow = dataclasses.replace(GOOD, runtime="tensorflow", precision="fp32", verdicts=())
    entry = saved(tmp_path, tensorflow)
    assert sorted(p.name for p in entry.folder.iterdir()) == ["decisions.json"]
    cached = entry.read()
    assert cached is not None and cached.decisions == tensorflow and cached.model is None


def rewrite(key: str, value):
    def damage(folder):
        decisions = json.loads((folder / "decisions.json").read_text())
        decisions[key] = value
        (folder / "decisions.json").write_text(json.dumps(decisions))

    return damage


def flip_a_byte(folder):
    data = bytearray((folder / "model.bin").read_bytes())
    data[-1] ^= 1  # same size, still a loadable model: only its digest tells
    (folder / "model.bin").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda folder: (folder / "decisions.json").write_text("{not json"), "Expecting"),
        (lambda folder: (folder / "decisions.json").write_text("[1]"), "not an object"),
        (rewrite("runtime", "onnx"), "no runtime"),
        (rewrite("precision", None), "no precision"),
        (rewrite("max_batch_size", "8"), "no batch size"),
        (rewrite("max_batch_size", 0), "no batch size"),
        (rewrite("verdicts", [{"precision": "int8"}]), "malformed verdicts"),
        (rewrite("files", {}), "no file list"),
        (rewrite("files", {"model.xml": 1, "model.bin": 2}), "malformed file list"),
        (flip_a_byte, "model.bin is not the file saved"),
        (lambda folder: (folder / "model.bin").unlink(), "No such file"),
    ],
)
def test_a_damaged_entry_is_removed_and_read_as_none(tmp_path, damage, why, caplog):
    entry = saved(tmp_path)
    damage(entry.folder)
    assert entry.read() is None
    assert not entry.folder.exists()
    [line] = [r.getMessage() for r in caplog.records]
    assert why in line and line.endswith("deleted, loading cold"), line


def test_an_entry_that_cannot_be_written_costs_only_time(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    compiled_cache.Entry.under(blocker, "k").save(GOOD, tiny_openvino_model())
    assert "not written" in caplog.text
    # a failure inside OpenVINO's writer (not an OSError) is no different
    entry = compiled_cache.Entry.under(tmp_path, "k")
    entry.save(GOOD, "not a model")
    assert entry.read() is None and "not written" in caplog.text
    assert not list((tmp_path / "compiled").glob(".staging-*"))


def test_a_second_writer_leaves_the_first_entry_as_it_was(tmp_path):
    first = saved(tmp_path)
    before = (first.folder / "decisions.json").read_text()
    other = dataclasses.replace(GOOD, runtime="tensorflow", max_batch_size=2)
    compiled_cache.Entry.under(tmp_path, "k").save(other, None)
    assert (first.folder / "decisions.json").read_text() == before
    assert not list((tmp_path / "compiled").glob(".staging-*"))


def test_a_crashed_writers_staging_folder_is_removed_later(tmp_path):
    stale = tmp_path / "compiled" / ".staging-crashed"
    stale.mkdir(parents=True)
    hour_ago = time.time() - compiled_cache.STALE_STAGING_SECONDS - 1
    os.utime(stale, (hour_ago, hour_ago))
    fresh = tmp_path / "compiled" / ".staging-writing-now"
    fresh.mkdir()
    saved(tmp_path)
    assert not stale.exists() and fresh.exists()
