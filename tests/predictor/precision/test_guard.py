"""The accuracy guard, the precision candidates, the calibration folder's split and labels: pure
parts, in process (the compiled-model cache's are in tests/predictor/runtime/)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from predictor.precision import calibration, guard
from predictor.precision.guard import judge
from support import images

pytestmark = pytest.mark.unit

LABELS = np.array([0, 1, 2] * 20)  # 60 held-out photos: enough for the bound, just


def one_hot(classes: np.ndarray) -> np.ndarray:
    return np.eye(3, dtype=np.float32)[classes]


@pytest.mark.parametrize(
    ("agreeing", "images", "bound"),
    [
        # full agreement: the exact bound is (1 - 0.95) ** (1 / n)
        (63, 63, 0.05 ** (1 / 63)),
        (59, 59, 0.05 ** (1 / 59)),
        # the Beta quantiles (scipy.stats.beta.ppf(0.05, x, n - x + 1)): 62 of 63, 90 of 100
        (62, 63, 0.926901),
        (90, 100, 0.836282),
        (0, 10, 0.0),
    ],
)
def test_the_bound_is_the_one_sided_95_percent_exact_lower_bound(agreeing, images, bound):
    assert guard.agreement_lower_bound(agreeing, images) == pytest.approx(bound, abs=2e-6)


def test_the_bound_holds_its_confidence_where_a_model_agrees_on_exactly_95_percent():
    """What "95 % confidence" means: a model agreeing on exactly 95 % of photos passes at most
    5 % of the time, at every folder size (Wilson's bound passes 56 of 56: 5.7 %)."""
    for count in range(guard.MIN_GUARD_IMAGES, 160):
        least = count  # the bound grows with k: walk down from full agreement
        while guard.agreement_lower_bound(least - 1, count) >= 0.95:
            least -= 1
        chance = sum(
            math.comb(count, k) * 0.95**k * 0.05 ** (count - k) for k in range(least, count + 1)
        )
        assert chance <= 0.05, (count, chance)


def test_the_fewest_photos_that_can_pass_is_where_full_agreement_reaches_the_bound():
    least = guard.MIN_GUARD_IMAGES
    assert guard.agreement_lower_bound(least, least) >= guard.AGREEMENT_MIN
    assert guard.agreement_lower_bound(least - 1, least - 1) < guard.AGREEMENT_MIN
    assert least == 59


def test_a_reduced_model_that_agrees_everywhere_passes_and_says_what_it_proved():
    verdict = judge("int8", one_hot(LABELS), one_hot(LABELS) * 0.9, LABELS)
    assert verdict.passed and verdict.reason == ""
    assert (verdict.agreement, verdict.accuracy, verdict.fp32_accuracy) == (1.0, 1.0, 1.0)
    assert verdict.agreement_bound == pytest.approx(0.05 ** (1 / 60))
    assert verdict.describe() == (
        "top-1 agreement with FP32 100.0% on 60 held-out photos, at least 95.1% with 95% "
        "confidence (one-sided exact bound), accuracy 100.0% (FP32 100.0%)"
    )


def test_one_disagreement_in_sixty_cannot_prove_95_percent():
    reduced = LABELS.copy()
    reduced[0] = 1  # was right (label 0), now wrong: accuracy drops too
    verdict = judge("int8", one_hot(LABELS), one_hot(reduced), LABELS)
    assert not verdict.passed
    assert verdict.reason == (
        "top-1 agreement 98.3% (59 of 60): at least 92.3% with 95% confidence < 95%; "
        "accuracy 98.3% < FP32's 100.0%"
    )


def test_lower_accuracy_is_refused_even_when_agreement_is_proved():
    # 200 photos: 1 disagreement still bounds agreement above 97 %, but it turns a right
    # answer wrong
    labels = np.array([0, 1] * 100)
    reduced = labels.copy()
    reduced[1] = 0
    verdict = judge("bf16", one_hot(labels), one_hot(reduced), labels)
    assert verdict.agreement == 0.995 and verdict.agreement_bound > 0.97
    assert not verdict.passed and verdict.reason == "accuracy 99.5% < FP32's 100.0%"


def test_a_disagreement_that_fixes_an_answer_is_not_lower_accuracy():
    labels = np.array([0, 1] * 100)
    fp32 = labels.copy()
    fp32[1] = 0  # FP32 wrong on one photo, the reduced model right
    verdict = judge("int8", one_hot(fp32), one_hot(labels), labels)
    assert verdict.passed and verdict.accuracy == 1.0 and verdict.fp32_accuracy == 0.995


def test_unlabelled_photos_are_judged_on_agreement_alone():
    unlabelled = np.full(60, -1)
    verdict = judge("int8", one_hot(LABELS), one_hot(LABELS), unlabelled)
    assert verdict.passed and verdict.accuracy is None
    assert verdict.describe().endswith("(one-sided exact bound)")


def test_too_few_held_out_photos_cannot_pass_even_agreeing_on_all():
    verdict = judge("int8", one_hot(LABELS[:58]), one_hot(LABELS[:58]), LABELS[:58])
    assert not verdict.passed and verdict.agreement == 1.0
    assert verdict.reason == (
        "58 held-out photos cannot show 95% agreement with 95% confidence: the guard needs "
        "at least 59"
    )
    assert guard.refused_unjudged("int8", 58).reason == verdict.reason


def test_no_held_out_photo_at_all_is_refused_not_divided_by():
    empty = np.zeros((0, 3), dtype=np.float32)
    verdict = judge("int8", empty, empty, np.zeros(0, dtype=np.int64))
    assert not verdict.passed and verdict.agreement == verdict.agreement_bound == 0.0


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
    found = guard.candidates(choice, frozenset(flags))
    assert found.tried == tried
    assert len(found.skipped) == len(skipped)
    for line, start in zip(found.skipped, skipped, strict=True):
        assert line.startswith(start)


XEON_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
fpu_exception\t: yes
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
vmx flags\t: vnmi preemption_timer invvpid
bugs\t\t: spectre_v1 spectre_v2

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
EPYC_FLAGS = "fpu sse2 avx2 avx512f avx512_vnni"  # AVX-512 without its bf16 instructions
AARCH64_CPUINFO = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd aes bf16\n"


@pytest.mark.parametrize(
    ("cpuinfo", "flags"),
    [
        (XEON_CPUINFO, "fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile"),
        (f"processor\t: 0\nflags\t\t: {EPYC_FLAGS}\n\n", EPYC_FLAGS),
        (AARCH64_CPUINFO, ""),  # Linux calls AArch64's "Features": no x86 flag to read
        (None, ""),  # no /proc/cpuinfo at all
    ],
    ids=["xeon", "epyc", "aarch64", "absent"],
)
def test_the_flags_are_read_from_proc_cpuinfo(tmp_path, monkeypatch, cpuinfo, flags):
    """The first processor's `flags` line, split on whitespace: not its `vmx flags` or `bugs`."""
    given = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        given.write_text(cpuinfo)

    def opening(path, *args, **kwargs):
        return open(given if path == "/proc/cpuinfo" else path, *args, **kwargs)

    monkeypatch.setattr(guard, "open", opening, raising=False)  # guard's own `open` only
    found = guard.cpu_flags()
    assert found == frozenset(flags.split())
    assert (guard.bf16_unsupported(found) == "") is ("avx512_bf16" in flags)  # bf16 runs natively


# -- the calibration folder ----------------------------------------------------------------


def photo_folder(root, count: int, labelled: bool = True):
    for index in range(count):
        folder = root / (["cat", "Dog", "OTHER"][index % 3] if labelled else "misc")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(images.rgb_png(seed=index))
    return root


def test_the_folder_is_split_in_quarters_by_content_not_by_name(tmp_path):
    first = calibration.load(photo_folder(tmp_path / "a", 12))
    assert (len(first.calibration), len(first.held_out)) == (3, 9)
    # the same photos under other names, in other folders: the same split
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
    flat = {bytes(p) for p in first.calibration.reshape(3, -1).view(np.uint8)}
    assert not flat & {bytes(p) for p in first.held_out.reshape(9, -1).view(np.uint8)}


def test_labels_come_from_the_nearest_label_folder_in_any_case(tmp_path):
    root = tmp_path / "photos"
    assert calibration.label_of(root / "cat" / "x.png", root) == 0
    assert calibration.label_of(root / "Dog" / "sub" / "x.png", root) == 1
    assert calibration.label_of(root / "OTHER" / "x.png", root) == 2
    assert calibration.label_of(root / "x.png", root) == -1
    assert calibration.label_of(root / "cats" / "x.png", root) == -1
    unlabelled = calibration.load(photo_folder(tmp_path / "u", 4, labelled=False))
    assert list(unlabelled.held_out_labels) == [-1, -1, -1]


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


def test_the_shipped_folder_is_large_enough_for_the_bound_to_pass_honestly():
    photos = calibration.load()
    assert (len(photos.calibration), len(photos.held_out)) == (22, 63)
    assert len(photos.held_out) >= guard.MIN_GUARD_IMAGES
    assert set(photos.held_out_labels) == {0, 1, 2}  # every held-out photo labelled


def test_a_photo_saved_again_in_another_format_is_never_on_both_sides(tmp_path):
    """Copies are found by their pixels, not their bytes: a BMP or a re-compressed PNG of a
    photo is the same photo (else copies of one easy photo could pass the guard as many)."""
    from PIL import Image

    root = photo_folder(tmp_path / "r", 12)
    for path in sorted(root.rglob("*.png")):
        image = Image.open(path)
        image.save(path.with_suffix(".bmp"))
        image.save(path.parent / f"again-{path.name}", compress_level=1)
        assert (path.parent / f"again-{path.name}").read_bytes() != path.read_bytes()
    photos = calibration.load(root)
    assert len(photos.calibration) + len(photos.held_out) == 12
    calibrated = {p.tobytes() for p in photos.calibration}
    assert not calibrated & {p.tobytes() for p in photos.held_out}


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


def test_the_owned_course_photos_decode_as_their_originals_do():
    """The default calibration folder holds the 85 labelled course photos, resized as the
    predictor resizes: for the six kept at their own size (tests/data/course-photos/originals),
    the resized copy gives the model exactly the original's pixels."""
    from collections import Counter

    from predictor.imaging import ImageLimits, decode_image

    photos = images.labelled_course_photos()
    assert Counter(label for _, label in photos) == {"cat": 29, "dog": 32, "other": 24}
    every = calibration.image_files(calibration.DEFAULT_DIR)
    assert sorted(every) == sorted(path for path, _ in photos)  # each photo in a label's folder
    resized = {path.name: path for path, _ in photos}
    assert len(resized) == 85  # one copy of each
    originals = images.original_photo_paths()
    assert len(originals) == 6
    for original in originals:
        ours = decode_image(resized[original.name].read_bytes(), ImageLimits())
        theirs = decode_image(original.read_bytes(), ImageLimits())
        assert np.array_equal(ours, theirs), original.name
