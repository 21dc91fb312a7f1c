"""The accuracy guard, the precision candidates, the calibration folder's split and labels, and
the compiled-model cache's key and damage handling: pure parts, in process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.precision import calibration, guard
from predictor.precision.guard import judge
from predictor.runtime import compiled_cache
from support import images

pytestmark = pytest.mark.unit

LABELS = np.array([0, 1, 2] * 10)


def one_hot(classes: np.ndarray) -> np.ndarray:
    return np.eye(3, dtype=np.float32)[classes]


def test_a_reduced_model_that_agrees_everywhere_passes():
    verdict = judge("int8", one_hot(LABELS), one_hot(LABELS) * 0.9, LABELS)
    assert verdict.passed and verdict.reason == ""
    assert (verdict.agreement, verdict.accuracy, verdict.fp32_accuracy) == (1.0, 1.0, 1.0)
    assert verdict.describe() == (
        "top-1 agreement with FP32 100.0% on 30 photos, accuracy 100.0% (FP32 100.0%)"
    )


def test_one_disagreement_in_thirty_is_under_99_percent():
    reduced = LABELS.copy()
    reduced[0] = 1  # was right (label 0), now wrong: accuracy drops too
    verdict = judge("int8", one_hot(LABELS), one_hot(reduced), LABELS)
    assert not verdict.passed
    assert verdict.reason == "top-1 agreement 96.7% < 99%; accuracy 96.7% < FP32's 100.0%"


def test_lower_accuracy_is_refused_even_at_full_agreement_on_unlabelled_photos():
    # 200 photos: 1 disagreement is 99.5 % agreement, but it turns a right answer wrong
    labels = np.array([0, 1] * 100)
    reduced = labels.copy()
    reduced[1] = 0
    verdict = judge("bf16", one_hot(labels), one_hot(reduced), labels)
    assert verdict.agreement == 0.995
    assert not verdict.passed and verdict.reason == "accuracy 99.5% < FP32's 100.0%"


def test_a_disagreement_that_fixes_an_answer_is_not_lower_accuracy():
    labels = np.array([0, 1] * 100)
    fp32 = labels.copy()
    fp32[1] = 0  # FP32 wrong on one photo, the reduced model right
    verdict = judge("int8", one_hot(fp32), one_hot(labels), labels)
    assert verdict.passed and verdict.accuracy == 1.0 and verdict.fp32_accuracy == 0.995


def test_unlabelled_photos_are_judged_on_agreement_alone():
    unlabelled = np.full(30, -1)
    verdict = judge("int8", one_hot(LABELS), one_hot(LABELS), unlabelled)
    assert verdict.passed and verdict.accuracy is None
    assert verdict.describe() == "top-1 agreement with FP32 100.0% on 30 photos"


def test_too_few_held_out_photos_cannot_pass():
    verdict = judge("int8", one_hot(LABELS[:9]), one_hot(LABELS[:9]), LABELS[:9])
    assert not verdict.passed
    assert verdict.reason == "9 held-out photos; the guard needs at least 10"


@pytest.mark.parametrize(
    ("choice", "flags", "tried", "skipped"),
    [
        ("int8", set(), ["int8"], []),
        ("bf16", {"avx512_bf16"}, ["bf16"], []),
        ("bf16", {"amx_bf16"}, ["bf16"], []),
        ("bf16", {"avx2", "avx512f"}, [], ["bf16: this CPU has neither"]),
        ("auto", {"avx512_bf16"}, ["int8", "bf16"], []),
        ("auto", {"avx2"}, ["int8"], ["bf16: this CPU has neither"]),
        ("fp32", {"avx512_bf16"}, [], []),
    ],
)
def test_candidates_follow_the_cpu(choice, flags, tried, skipped):
    found, lines = guard.candidates(choice, frozenset(flags))
    assert found == tried
    assert len(lines) == len(skipped)
    for line, start in zip(lines, skipped, strict=True):
        assert line.startswith(start)


def test_this_machines_flags_are_read():
    assert guard.cpu_flags(), "no flags line in /proc/cpuinfo"


# -- the calibration folder ----------------------------------------------------------------


def photo_folder(root, count: int, labelled: bool = True):
    for index in range(count):
        folder = root / (["cat", "Dog", "OTHER"][index % 3] if labelled else "misc")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(images.rgb_png(seed=index))
    return root


def test_the_folder_is_split_in_halves_by_content_not_by_name(tmp_path):
    first = calibration.load(photo_folder(tmp_path / "a", 12))
    assert len(first.calibration) == len(first.held_out) == 6
    # the same photos under other names, in other folders: the same halves
    renamed = tmp_path / "b"
    for index, path in enumerate(sorted((tmp_path / "a").rglob("*.png"))):
        target = renamed / path.parent.name / f"z{99 - index}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    second = calibration.load(renamed)
    assert np.array_equal(first.calibration, second.calibration)
    assert np.array_equal(first.held_out_labels, second.held_out_labels)
    assert first.digest == second.digest == calibration.fingerprint(renamed)
    # no photo on both sides
    flat = {bytes(p) for p in first.calibration.reshape(6, -1).view(np.uint8)}
    assert not flat & {bytes(p) for p in first.held_out.reshape(6, -1).view(np.uint8)}


def test_labels_come_from_the_nearest_label_folder_in_any_case(tmp_path):
    root = tmp_path / "photos"
    assert calibration.label_of(root / "cat" / "x.png", root) == 0
    assert calibration.label_of(root / "Dog" / "sub" / "x.png", root) == 1
    assert calibration.label_of(root / "OTHER" / "x.png", root) == 2
    assert calibration.label_of(root / "x.png", root) == -1
    assert calibration.label_of(root / "cats" / "x.png", root) == -1
    unlabelled = calibration.load(photo_folder(tmp_path / "u", 4, labelled=False))
    assert list(unlabelled.held_out_labels) == [-1, -1]


def test_a_relabelled_photo_changes_the_fingerprint(tmp_path):
    root = photo_folder(tmp_path / "p", 6)
    before = calibration.fingerprint(root)
    (root / "cat" / "0.png").rename(root / "Dog" / "0.png")
    assert calibration.fingerprint(root) != before


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: (root.mkdir(), (root / "notes.txt").write_text("x")), "holds no image"),
        (
            lambda root: (root.mkdir(), (root / "broken.png").write_bytes(b"\x89PNG\r\n")),
            "broken.png: ",
        ),
    ],
)
def test_an_unusable_folder_says_why(tmp_path, make, message):
    root = tmp_path / "photos"
    make(root)
    with pytest.raises(calibration.CalibrationError, match=message):
        calibration.load(root)


def test_the_shipped_photos_decode_as_their_originals_do():
    """They were resized as the predictor resizes: the model sees the originals' pixels."""
    from predictor.imaging import ImageLimits, decode_image

    shipped = sorted(calibration.DEFAULT_DIR.rglob("*.png"))
    assert len(shipped) == 30
    originals = images.ORIGINAL_PHOTOS
    assert sorted(p.name for p in images.original_photo_paths()) == [p.name for p in shipped[:6]]
    for path in shipped[:6]:
        ours = decode_image(path.read_bytes(), ImageLimits())
        theirs = decode_image((originals / path.name).read_bytes(), ImageLimits())
        assert np.array_equal(ours, theirs), path.name


# -- the compiled-model cache ----------------------------------------------------------------


def test_the_key_changes_with_each_input():
    base = {"model": "a" * 64, "runtime": "auto", "precision": "int8", "threads": 2, "photos": "p"}
    keys = {compiled_cache.key(**base)}
    for name, other in [
        ("model", "b" * 64),
        ("runtime", "openvino"),
        ("precision", "fp32"),
        ("threads", 4),
        ("photos", "q"),
    ]:
        keys.add(compiled_cache.key(**{**base, name: other}))
    assert len(keys) == 6
    assert compiled_cache.key(**base) == compiled_cache.key(**base)


def tiny_openvino_model():
    """A real OpenVINO model with weights, of the contract's shape ([N, 224, 224, 3] in, [N, 3]
    out: y = the pixels' mean per channel * w): what an entry holds, in miniature."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 224, 224, 3], np.float32, name="x")
    mean = ops.reduce_mean(x, ops.constant(np.array([1, 2])), keep_dims=False)
    weights = ops.constant(np.arange(3, dtype=np.float32) + 1)
    return ov.Model([ops.multiply(mean, weights)], [x], "tiny")


GOOD = {"runtime": "openvino", "precision": "int8", "verdicts": [], "max_batch_size": 8}


def saved(tmp_path, decisions=GOOD) -> compiled_cache.Entry:
    entry = compiled_cache.Entry.under(tmp_path, "k")
    entry.save(decisions, tiny_openvino_model() if decisions["runtime"] == "openvino" else None)
    assert entry.folder.is_dir()
    return entry


def test_an_entry_is_written_whole_and_read_back(tmp_path):
    entry = saved(tmp_path)
    decisions, model = entry.read()
    assert {k: decisions[k] for k in GOOD} == GOOD
    assert set(decisions["files"]) == {"model.xml", "model.bin"}
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU")
    assert list(compiled([np.ones((1, 224, 224, 3), np.float32)])[0][0]) == [1, 2, 3]
    assert [p.name for p in (tmp_path / "compiled").iterdir()] == ["k"]  # no staging left


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
        (flip_a_byte, "model.bin is not the file saved"),
        (lambda folder: (folder / "model.bin").unlink(), "No such file"),
    ],
)
def test_a_damaged_entry_is_removed_and_read_as_none(tmp_path, damage, why, caplog):
    entry = saved(tmp_path)
    damage(entry.folder)
    assert entry.read() is None
    assert not entry.folder.exists()
    assert why in caplog.text and "deleted, loading cold" in caplog.text


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
    compiled_cache.Entry.under(tmp_path, "k").save({**GOOD, "max_batch_size": 2}, None)
    assert (first.folder / "decisions.json").read_text() == before
    assert not list((tmp_path / "compiled").glob(".staging-*"))


def test_a_crashed_writers_staging_folder_is_removed_later(tmp_path):
    import os
    import time

    stale = tmp_path / "compiled" / ".staging-crashed"
    stale.mkdir(parents=True)
    hour_ago = time.time() - compiled_cache.STALE_STAGING_SECONDS - 1
    os.utime(stale, (hour_ago, hour_ago))
    fresh = tmp_path / "compiled" / ".staging-writing-now"
    fresh.mkdir()
    saved(tmp_path)
    assert not stale.exists() and fresh.exists()


def test_duplicate_photos_are_never_on_both_sides(tmp_path):
    root = photo_folder(tmp_path / "d", 12)
    for path in sorted(root.rglob("*.png"))[:4]:
        (path.parent / f"copy-{path.name}").write_bytes(path.read_bytes())
    photos = calibration.load(root)
    assert len(photos.calibration) + len(photos.held_out) == 12
    calibrated = {p.tobytes() for p in photos.calibration}
    assert not calibrated & {p.tobytes() for p in photos.held_out}


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    from predictor.imaging import ImageLimits

    root = photo_folder(tmp_path / "big", 3)
    with pytest.raises(calibration.CalibrationError, match="over the limit of 1000 bytes"):
        calibration.load(root, ImageLimits(max_bytes=1000))


def test_the_key_includes_the_predictors_own_code():
    assert len(compiled_cache._code_digest()) == 16


def test_the_owned_course_photos_decode_as_their_originals_do():
    """tests/data/course-photos/images were resized as the predictor resizes: for the six kept
    at their own size, the resized file gives the model exactly the original's pixels."""
    from predictor.imaging import ImageLimits, decode_image

    originals = images.original_photo_paths()
    assert len(originals) == 6
    for original in originals:
        resized = images.COURSE_PHOTOS / "images" / original.name
        ours = decode_image(resized.read_bytes(), ImageLimits())
        theirs = decode_image(original.read_bytes(), ImageLimits())
        assert np.array_equal(ours, theirs), original.name
    labelled = (images.COURSE_PHOTOS / "labels.csv").read_text().splitlines()[1:]
    assert len(labelled) == len(images.course_photo_paths(1000)) == 85
