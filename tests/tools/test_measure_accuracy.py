"""The folders `tools/measure_accuracy.py` reads: label sub-folders (the calibration folder's
layout, any case) or `labels.csv` beside `images/`. The service end to end is measured in
tests/predictor/test_default_model.py."""

from __future__ import annotations

import pytest

from support import images
from tools.measure_accuracy import labelled_photos

pytestmark = pytest.mark.unit


def test_label_sub_folders_in_any_case_and_photos_outside_them_left_out(tmp_path):
    for folder, name in [("cat", "a.png"), ("DOG", "b.png"), ("Other/deeper", "c.jpg")]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / name).write_bytes(images.rgb_png())
    (tmp_path / "unlabelled.png").write_bytes(images.rgb_png())
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "d.png").write_bytes(images.rgb_png())
    assert labelled_photos(tmp_path) == [
        (tmp_path / "DOG" / "b.png", 1),
        (tmp_path / "Other" / "deeper" / "c.jpg", 2),
        (tmp_path / "cat" / "a.png", 0),
    ]


def test_labels_csv_beside_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text("file,label\nx.png,dog\ny.png, Cat\n")
    assert labelled_photos(tmp_path) == [
        (tmp_path / "images" / "x.png", 1),
        (tmp_path / "images" / "y.png", 0),
    ]


def test_the_course_photos_are_85_labelled_photos():
    photos = labelled_photos(images.COURSE_PHOTOS)
    assert [label for _, label in photos].count(0) == 29
    assert len(photos) == 85
    assert sorted(path for path, _ in photos) == sorted(images.course_photo_paths(1000))


@pytest.mark.parametrize("make", [lambda root: None, lambda root: root.mkdir()])
def test_a_folder_without_labelled_photos_says_so(tmp_path, make):
    root = tmp_path / "photos"
    make(root)
    with pytest.raises(SystemExit) as refused:
        labelled_photos(root)
    assert str(root) in str(refused.value)
