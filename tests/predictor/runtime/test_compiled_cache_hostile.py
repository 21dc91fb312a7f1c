"""A compiled-model cache entry holding what `save` never writes
(predictor/runtime/compiled_cache.py):
names out of the folder, links, FIFOs, devices, oversized files, or a model of another shape
with its digests rewritten. Each is deleted with one warning and read as no entry (the load
then runs cold), without opening anything that could block or read without end.

Real OpenVINO models, built with its opset (no TensorFlow), saved by the real `Entry.save`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading

import numpy as np
import pytest

from predictor.runtime.compiled_cache import MOST_BYTES, Entry
from predictor.runtime.decisions import Decisions

pytestmark = pytest.mark.unit

GOOD = Decisions(runtime="openvino", precision="fp32", max_batch_size=8)


def model(input_shape=(-1, 224, 224, 3), outputs: int = 1, classes: int = 3):
    """A real model with weights: the mean over the middle axes, times a [last axis, classes]
    matrix of ones; `outputs` outputs. The defaults are the contract's shape."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter(list(input_shape), np.float32, name="x")
    mean = ops.reduce_mean(x, ops.constant(np.arange(1, len(input_shape) - 1)), keep_dims=False)
    weights = ops.constant(np.ones((input_shape[-1], classes), np.float32))
    values = ops.matmul(mean, weights, False, False)
    results = [ops.multiply(values, ops.constant(np.float32(n + 1))) for n in range(outputs)]
    return ov.Model(results, [x], "tiny")


def saved(tmp_path, decisions=GOOD, served=None) -> Entry:
    entry = Entry.under(tmp_path / "cache", "k")
    runtime_model = served if served is not None else model()
    entry.save(decisions, runtime_model if decisions.runtime == "openvino" else None)
    assert entry.folder.is_dir()
    return entry


def read_within(entry: Entry, seconds: float = 20):
    """entry.read(), failing the test (not hanging it) should the read block."""
    results = []
    worker = threading.Thread(target=lambda: results.append(entry.read()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "reading the entry blocked (a FIFO opened, /dev/zero read)"
    return results[0]


def test_an_intact_entry_is_read_and_its_model_is_the_contracts(tmp_path):
    entry = saved(tmp_path)
    cached = read_within(entry)
    assert cached.decisions == GOOD
    saved_files = json.loads((entry.folder / "decisions.json").read_text())["files"]
    assert saved_files.keys() == {"model.xml", "model.bin"}
    import openvino as ov

    compiled = ov.Core().compile_model(cached.model, "CPU")
    values = compiled([np.ones((2, 224, 224, 3), np.float32)])[0]
    assert values.tolist() == [[3, 3, 3], [3, 3, 3]]
    tensorflow = saved(tmp_path / "tf", dataclasses.replace(GOOD, runtime="tensorflow"))
    assert read_within(tensorflow).model is None


def rewrite_decisions(**changes):
    def damage(folder):
        decisions = json.loads((folder / "decisions.json").read_text())
        decisions.update(changes)
        (folder / "decisions.json").write_text(json.dumps(decisions))

    return damage


def files_naming(name: str):
    def damage(folder):
        decisions = json.loads((folder / "decisions.json").read_text())
        decisions["files"][name] = hashlib.sha256(b"").hexdigest()
        (folder / "decisions.json").write_text(json.dumps(decisions))

    return damage


def replaced(name: str, make):
    def damage(folder):
        (folder / name).unlink()
        make(folder / name)

    return damage


def sparse(size: int):
    def make(path):
        with open(path, "wb") as file:
            file.truncate(size)  # no block written: the cap is judged by lstat alone

    return make


DAMAGE = {
    "files naming /dev/zero": (files_naming("/dev/zero"), "no file list"),
    "files naming ../x": (files_naming("../x"), "no file list"),
    "files naming a FIFO in the entry": (
        lambda folder: (files_naming("fifo")(folder), os.mkfifo(folder / "fifo")),
        "holds 'fifo', which no entry holds",
    ),
    "model.bin a link to /dev/zero": (
        replaced("model.bin", lambda path: path.symlink_to("/dev/zero")),
        "model.bin is a link",
    ),
    "model.bin a FIFO": (replaced("model.bin", os.mkfifo), "model.bin is not a regular file"),
    "model.bin a folder": (replaced("model.bin", os.mkdir), "model.bin is not a regular file"),
    "model.bin over its cap": (
        replaced("model.bin", sparse(MOST_BYTES["model.bin"] + 1)),
        f"model.bin is {MOST_BYTES['model.bin'] + 1} bytes, over the cap",
    ),
    "decisions.json a link to /dev/zero": (
        replaced("decisions.json", lambda path: path.symlink_to("/dev/zero")),
        "decisions.json is a link",
    ),
    "decisions.json a FIFO": (
        replaced("decisions.json", os.mkfifo),
        "decisions.json is not a regular file",
    ),
    "decisions.json over its cap": (
        replaced("decisions.json", sparse(MOST_BYTES["decisions.json"] + 1)),
        "decisions.json is 1048577 bytes, over the cap",
    ),
    "decisions.json nested past Python's recursion limit": (
        lambda folder: (folder / "decisions.json").write_text("[" * 200_000),
        "maximum recursion depth",
    ),
    "decisions.json missing": (
        lambda folder: (folder / "decisions.json").unlink(),
        "No such file or directory",
    ),
    "a file no entry holds": (
        lambda folder: (folder / "notes.txt").write_text("hello"),
        "holds 'notes.txt', which no entry holds",
    ),
    "a TensorFlow entry holding a model": (
        rewrite_decisions(runtime="tensorflow", files={}),
        "holds 'model.bin', which a tensorflow entry does not",
    ),
    "model.xml not a model, digests rewritten": (
        lambda folder: (
            (folder / "model.xml").write_text("<net>"),
            rewrite_decisions(
                files={
                    "model.xml": hashlib.sha256(b"<net>").hexdigest(),
                    "model.bin": hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest(),
                }
            )(folder),
        ),
        "not an OpenVINO model",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_an_entry_holding_what_save_never_writes_is_deleted_unopened(tmp_path, case, caplog):
    damage, why = DAMAGE[case]
    entry = saved(tmp_path)
    damage(entry.folder)
    with caplog.at_level(logging.WARNING, logger="predictor.runtime.compiled_cache"):
        assert read_within(entry) is None
    assert not os.path.lexists(entry.folder)
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert why in line and line.endswith("deleted, loading cold"), line


SWAPPED = {
    "six outputs": (
        lambda: model(outputs=6),
        "the model has 1 input(s) and 6 output(s); the contract is one of each",
    ),
    "channels first": (
        lambda: model(input_shape=(-1, 3, 224, 224)),
        "the model's input is f32 [?,3,224,224]; the contract is f32 [?, 224, 224, 3]",
    ),
    "four classes": (
        lambda: model(classes=4),
        "the model's output is f32 [?,4]; the contract is f32 [?, 3]",
    ),
    "a batch of one only": (
        lambda: model(input_shape=(1, 224, 224, 3)),
        "the model's input is f32 [1,224,224,3]",
    ),
}


@pytest.mark.parametrize("case", list(SWAPPED))
def test_a_swapped_model_with_rewritten_digests_is_held_to_the_contract(tmp_path, case, caplog):
    """Whoever writes the cache can write digests that match: only the model's shape tells."""
    make, why = SWAPPED[case]
    entry = saved(tmp_path, served=make())  # save writes the swapped model's own digests
    with caplog.at_level(logging.WARNING, logger="predictor.runtime.compiled_cache"):
        assert read_within(entry) is None
    assert not entry.folder.exists()
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert why in line, line


def test_an_entry_folder_that_is_a_link_is_removed_not_followed(tmp_path, caplog):
    elsewhere = saved(tmp_path / "elsewhere")
    entry = Entry.under(tmp_path / "cache", "k")
    entry.folder.parent.mkdir(parents=True)
    entry.folder.symlink_to(elsewhere.folder, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="predictor.runtime.compiled_cache"):
        assert read_within(entry) is None
    assert not os.path.lexists(entry.folder)
    assert "is not a folder" in caplog.text
    assert read_within(elsewhere) is not None  # the link's target is left as it was
