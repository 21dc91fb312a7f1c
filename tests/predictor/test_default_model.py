"""With no model URI the predictor serves the built-in demo model, says so, and it works."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from support.clients import INFER, MODEL, json_request, raw_exchange, values_of
from support.images import CAT, COURSE_PHOTOS
from support.servers import ROOT, start_predictor, wait_ready


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    process = start_predictor("", tmp_path_factory.mktemp("demo"))
    try:
        yield wait_ready(process)
    finally:
        process.stop()


def test_it_says_plainly_once_that_it_serves_the_demo_model(demo):
    log = demo.log()
    assert log.count("no model URI given: serving the built-in demo model") == 1
    facts = httpx.get(f"{demo.url}/v2/models/{MODEL}").json()["parameters"]
    assert facts["model"].startswith("built-in demo model (EfficientNet-Lite0")
    assert facts["uri"].endswith("predictor/default_model/cats-dogs-other-lite0.keras")


def test_batching_is_sized_at_load_and_shown(demo):
    from predictor.runtime.cpus import available_cpus

    facts = httpx.get(f"{demo.url}/v2/models/{MODEL}").json()["parameters"]
    size, parallel = int(facts["max_batch_size"]), int(facts["parallel_model_calls"])
    assert 1 <= size <= 32
    assert parallel == (available_cpus() if facts["runtime"] == "openvino" else 1)
    line = f"batching: up to {size} images per model call (measured), {parallel} call(s) at once"
    assert line in demo.log()


def test_no_line_per_request_by_default(demo):
    before = demo.log().count("\n")
    for _ in range(3):
        httpx.post(demo.url + INFER, json=json_request([CAT.read_bytes()]), timeout=60)
    time.sleep(0.3)
    assert demo.log().count("\n") == before


def test_log_requests_gives_one_access_and_one_latency_line_per_request(model_file, tmp_path):
    process = wait_ready(start_predictor(model_file, tmp_path, LOG_REQUESTS="true"))
    try:
        for _ in range(3):
            httpx.post(process.url + INFER, json=json_request([CAT.read_bytes()]), timeout=60)
        # A path with CR, LF and terminal escapes: uvicorn quotes it decoded in the access line.
        forged = b"GET /x%0d%0a2026-01-01%20INFO%20forged%1b[31m HTTP/1.1\r\nHost: x\r\n"
        raw_exchange(process.http_port, forged + b"Connection: close\r\n\r\n")
        time.sleep(0.3)
        log = process.log()
    finally:
        process.stop()
    assert log.count('"POST /v2/models/cats-dogs-other/infer HTTP/1.1" 200') == 3
    assert log.count("predict_ms") == 3
    forged_lines = [line for line in log.splitlines() if "forged" in line]
    assert len(forged_lines) == 1 and "404" in forged_lines[0]
    assert "\x1b" not in log and "\r" not in log


def test_the_courses_cat_photo_is_a_cat(demo):
    upload = httpx.post(f"{demo.url}/upload", files={"file": ("cat.png", CAT.read_bytes())})
    assert upload.status_code == 200
    assert upload.json()["prediction"] == "Cat"
    labels, values = values_of(
        httpx.post(demo.url + INFER, json=json_request([CAT.read_bytes()])).json()
    )
    assert labels == ["Cat"]
    assert values[0][0] > 0.5 > max(values[0][1], values[0][2])


def test_the_measuring_script_on_the_course_photos(demo):
    result = subprocess.run(
        [sys.executable, "-m", "tools.measure_accuracy", demo.url, str(COURSE_PHOTOS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    print(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model: built-in demo model")
    assert lines[1].startswith("85 photos from")
    # These photos trained the head, so this checks the script and the serving path, not the
    # model's accuracy (the cross-validated estimate is in predictor/default_model/README.md).
    accuracy = float(lines[2].split()[1].rstrip("%"))
    assert accuracy >= 97.0
    assert "confusion (rows: truth, columns: predicted)" in result.stdout
