"""What the predictor trusts, made hostile, in the real process: a calibration folder of copies
of one photo, a model file whose config.json inflates to 2.5 GiB, a model cache on a full (or
read-only) file system during a real S3 download, and a compiled-model cache entry swapped for
a model of another shape with its digests rewritten. Each is refused in one line and the
predictor serves what it safely can (FP32; a cold load) or ends at once, never in a loop.

The unit tests (test_*_hostile.py, test_model_file.py, test_cache_writes.py beside them)
hold the rest of the cases; these are the ends the processes see."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import httpx
import numpy as np
import pytest

from predictor.imaging import ImageLimits, decode_image
from predictor.runtime import loading
from predictor.runtime.compiled_cache import Entry
from predictor.runtime.deciding import run
from support import archives, images
from support.servers import ROOT, Process, free_port, start_predictor, wait_exit, wait_ready
from support.storage import start_s3

# -- case 1: a calibration folder of copies ------------------------------------------------------


def test_int8_on_copies_of_one_photo_serves_fp32_and_says_why(tmp_path, model_file):
    """It crash-looped: `need at least one array to concatenate`, exit 1, at every start."""
    photos = tmp_path / "photos"
    (photos / "cat").mkdir(parents=True)
    photo = images.course_photo_paths(1)[0]
    for index in range(30):
        shutil.copyfile(photo, photos / "cat" / f"copy-{index}.png")
    process = start_predictor(
        model_file,
        tmp_path,
        "--precision",
        "int8",
        "--runtime",
        "openvino",
        CALIBRATION_DIR=str(photos),
        MAX_BATCH_SIZE="4",
    )
    try:
        wait_ready(process, timeout=300)
        metadata = httpx.get(f"{process.url}/v2/models/cats-dogs-other").json()["parameters"]
        log = process.log()
    finally:
        process.stop()
    assert metadata["precision"] == "fp32"
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, log[-3000:]
    assert warnings[0].endswith(
        f"precision int8 not tried (calibration folder {photos}: 1 distinct photo in 30 files "
        "(copies count once); 79 are needed, a quarter to calibrate, the rest held out): "
        "serving fp32"
    )
    assert "Traceback" not in log


# -- case 4: a model archive that inflates to gigabytes ------------------------------------------


def test_a_model_whose_config_inflates_to_gigabytes_ends_the_process_in_one_line(
    tmp_path, model_file
):
    """The real model, its config.json replaced by 2.5 GiB of zeros deflated to 2.6 MB: Keras's
    own guard starts at 4 GiB, and the predictor reached 5.9 GiB of RSS, an OOM loop in a 2 GiB
    pod. Refused before Keras (or TensorFlow) is imported."""
    bomb = archives.Member(
        "config.json", archives.zeros_stream(2560), zipfile.ZIP_DEFLATED, 2560 << 20
    )
    path = archives.repacked(model_file, tmp_path / "final_model.keras", bomb)
    with zipfile.ZipFile(path) as repacked, zipfile.ZipFile(model_file) as real:
        assert repacked.namelist() == real.namelist()  # only config.json's bytes changed
    started = time.monotonic()
    process = start_predictor(path, tmp_path)
    assert wait_exit(process, timeout=120) == 1
    took = time.monotonic() - started
    log = process.log()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log[-3000:]
    assert errors[0].endswith(
        f"cannot load model cats-dogs-other from {path}: {path} is not a loadable Keras model: "
        "config.json inflates to 2.5 GiB, more than the 8.0 MiB a model's config.json may hold"
    )
    assert "Traceback" not in log
    print(f"refused after {took:.1f} s")
    assert took < 60


# -- case 5: a model cache that cannot be written during an S3 download -------------------------


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """A real S3 (moto's server) holding a 2 MiB object named like a model: the download is
    what is tested, not the model, so its bytes need not be one."""
    workdir = tmp_path_factory.mktemp("s3")
    s3 = start_s3(workdir, with_auth=False)
    try:
        s3.client().create_bucket(Bucket="models")
        s3.client().put_object(
            Bucket="models", Key="m/final_model.keras", Body=np.random.bytes(2 << 20)
        )
        yield s3
    finally:
        s3.stop()


def user_namespaces() -> str:
    """Why a private mount cannot be made here, or "" when it can (`unshare -rm`: no root
    needed where user namespaces are allowed; Docker's default seccomp profile forbids them)."""
    try:
        done = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare cannot run: {exc}"
    return "" if done.returncode == 0 else f"no user namespaces: {done.stderr.strip()}"


URI = "s3://models/m/final_model.keras"
CAUSES = {
    "tmpfs": "No space left on device (ENOSPC)",
    "tmpfs-ro": "Read-only file system (EROFS)",
    "fsize": "File too large (EFBIG)",
}


def start_on_small_cache(s3, tmp_path, how: str) -> Process:
    """The predictor fetching URI into a cache on a 1 MiB file system (`tmpfs`), a read-only
    one (`tmpfs-ro`), or under a 1 MiB file size limit (`fsize`: RLIMIT_FSIZE, which any user
    may lower, and the kernel then answers a write past it with EFBIG)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    http_port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "predictor", "--model_path", URI]
    command += ["--http_port", str(http_port), "--grpc_port", str(grpc_port)]
    env = {**os.environ, **s3.env(), "MODEL_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    preexec = None
    if how.startswith("tmpfs"):
        options = "size=1m,ro" if how == "tmpfs-ro" else "size=1m"
        # In a mount namespace of its own: the file system goes with the process, so what the
        # failure left in it is listed in the log once the predictor has ended.
        script = (
            f'mount -t tmpfs -o {options} tmpfs "$0" || exit 99; "$@"; code=$?; '
            'echo "left in the cache: [$(ls -A "$0")]"; exit $code'
        )
        namespace = ["unshare", "--user", "--map-root-user", "--mount"]
        command = [*namespace, "sh", "-c", script, str(cache), *command]
    else:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]

        def preexec() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))

    log_path = tmp_path / f"predictor-{http_port}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec
        )
    return Process(popen, log_path, http_port, grpc_port)


@pytest.mark.parametrize("how", list(CAUSES))
def test_a_cache_that_cannot_be_written_ends_the_load_at_once_in_one_line(bucket, tmp_path, how):
    """It was "S3 unreachable", retried for MODEL_FETCH_TIMEOUT_SECONDS (300 s)."""
    if how.startswith("tmpfs") and (why := user_namespaces()):
        pytest.skip(f"{why} (the file size limit case runs everywhere)")
    started = time.monotonic()
    process = start_on_small_cache(bucket, tmp_path, how)
    assert wait_exit(process, timeout=120) == 1
    took = time.monotonic() - started
    log = process.log()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log[-3000:]
    cache = tmp_path / "cache"
    assert errors[0].endswith(
        f"cannot load model cats-dogs-other from {URI}: "
        f"cannot write the model cache {cache}: {CAUSES[how]}"
    )
    assert "retrying" not in log and "unreachable" not in log and "Traceback" not in log
    if how.startswith("tmpfs"):
        assert "left in the cache: []" in log  # the partial download removed
    else:
        assert list(cache.iterdir()) == []
    print(f"{how}: refused after {took:.1f} s")
    assert took < 60


# -- case 3: a compiled-model cache entry swapped for a model of another shape -------------------


def six_outputs():
    """A real OpenVINO model taking the contract's input and giving six [N, 3] outputs."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 224, 224, 3], np.float32, name="x")
    mean = ops.reduce_mean(x, ops.constant(np.array([1, 2])), keep_dims=False)
    return ov.Model([ops.multiply(mean, np.float32(n)) for n in range(6)], [x], "six")


def test_a_swapped_entry_is_deleted_and_the_load_done_cold(
    tmp_path, model_file, keras_model, caplog
):
    """Whoever writes the cache can rewrite the digests too (docs/precision.md says the cache is a
    trust boundary); the warm path used to serve whatever it found. The contract's shape is
    now checked before the model is compiled."""
    sha256 = hashlib.sha256(model_file.read_bytes()).hexdigest()

    def load() -> loading.Loaded:
        return loading.load(
            model_file,
            sha256,
            choice="openvino",
            threads=2,
            max_batch_size=4,
            cache_dir=tmp_path / "cache",
        )

    first = load()
    shutil.rmtree(first.entry.folder)
    Entry(first.entry.folder).save(first.decisions, six_outputs())  # with its own digests
    with caplog.at_level(logging.WARNING):
        again = load()
    assert not again.from_cache
    # ours only: TensorFlow warns of retracing once enough runtimes were traced in the process
    ours = [r for r in caplog.records if r.name.startswith("predictor")]
    [line] = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert line == (
        f"compiled-model cache {first.entry.folder} unusable (the model has 1 input(s) and 6 "
        "output(s); the contract is one of each): deleted, loading cold"
    )
    pixels = decode_image(images.CAT.read_bytes(), ImageLimits())[np.newaxis]
    expected = keras_model.predict(pixels, verbose=0)
    np.testing.assert_allclose(run(again.runtime, pixels), expected, atol=1e-4)
    assert load().from_cache  # the cold load wrote the entry anew
