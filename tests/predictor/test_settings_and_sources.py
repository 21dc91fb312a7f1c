"""The predictor's settings (flags over environment over defaults) and model-source resolution
(local files, unsupported schemes, retries, redaction), in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.settings import parse_settings
from predictor.sources import ModelSourceError, SourceUnavailable, redact, resolve

pytestmark = pytest.mark.unit


def settings_from(monkeypatch, argv: list[str], **env: str):
    return parse_settings(argv, env=env)  # only these variables: not the machine's


@pytest.mark.parametrize(
    ("argv", "env", "field", "expected"),
    [
        ([], {}, "model_uri", ""),
        ([], {"STORAGE_URI": "s3://b/k"}, "model_uri", "s3://b/k"),
        ([], {"MODEL_URI": "runs:/1", "STORAGE_URI": "s3://b/k"}, "model_uri", "runs:/1"),
        (["--model_path", "/m"], {}, "model_uri", "/m"),
        ([], {"MAX_IMAGES_PER_REQUEST": "4"}, "max_images", 4),
        (["--max_images_per_request", "5"], {"MAX_IMAGES_PER_REQUEST": "4"}, "max_images", 5),
        ([], {"LOG_REQUESTS": "yes"}, "log_requests", True),
        (["--log_requests", "false"], {"LOG_REQUESTS": "1"}, "log_requests", False),
        (["--max_batch_wait_ms", "5"], {}, "max_batch_wait", 0.005),
        ([], {}, "listen_host", "127.0.0.1"),
        ([], {}, "precision", "fp32"),
        ([], {"PRECISION": "int8"}, "precision", "int8"),
        (["--precision", "auto"], {"PRECISION": "bf16"}, "precision", "auto"),
        ([], {"CALIBRATION_DIR": "/photos"}, "calibration_dir", Path("/photos")),
    ],
)
def test_flags_win_over_the_environment_over_defaults(monkeypatch, argv, env, field, expected):
    assert getattr(settings_from(monkeypatch, argv, **env), field) == expected


def test_uri_and_path_together_are_refused(monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        settings_from(monkeypatch, ["--model_uri", "a", "--model_path", "b"])
    assert exit_.value.code == 2


def test_a_local_file_or_a_folder_holding_one(tmp_path):
    model = tmp_path / "final_model.keras"
    model.write_bytes(b"not really a model, but a file")
    for uri in (str(model), str(tmp_path), f"file://{model}"):
        resolved = resolve(uri, tmp_path / "cache", give_up_after=0)
        assert resolved.path == model
        assert len(resolved.sha256) == 64


@pytest.mark.parametrize(
    "uri", ["ftp://host/model.keras", "https://user:secret@host/model.keras", "/does/not/exist"]
)
def test_unusable_uris_fail_at_once_without_credentials(tmp_path, uri):
    with pytest.raises(ModelSourceError) as error:
        resolve(uri, tmp_path, give_up_after=60, sleep=pytest.fail)
    assert "secret" not in str(error.value)


def test_unavailable_sources_are_retried_with_back_off_then_given_up(monkeypatch, tmp_path):
    from predictor import sources

    def unavailable(uri: str, cache_dir: Path):
        raise SourceUnavailable("https://user:pw@store is down")

    monkeypatch.setattr(sources, "_resolve_once", unavailable)
    now, sleeps = [0.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with pytest.raises(ModelSourceError, match="gave up after 20 s") as error:
        resolve("s3://b/k", tmp_path, give_up_after=20, sleep=sleep, clock=lambda: now[0])
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert "pw@" not in str(error.value)


def test_redact_hides_url_credentials():
    assert redact("http://me:pw@host/x and s3://k:s@b/") == "http://***@host/x and s3://***@b/"


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (
            [],
            {"MAX_IMAGES_PER_REQUEST": "abc"},
            "MAX_IMAGES_PER_REQUEST (or --max_images_per_request)",
        ),
        (["--max_images_per_request", "0"], {}, "--max_images_per_request: '0' must be at least 1"),
        (["--log_requests", "tru"], {}, "--log_requests: 'tru' is not a boolean"),
        ([], {"LOG_REQUESTS": "maybe"}, "LOG_REQUESTS (or --log_requests)"),
        (["--runtime", "onnx"], {}, "--runtime: 'onnx' is not one of auto, openvino, tensorflow"),
        ([], {"PRECISION": "fp16"}, "PRECISION (or --precision): 'fp16' is not one of fp32, int8"),
        (
            ["--precision", "int8", "--runtime", "tensorflow"],
            {},
            "--precision int8 runs on OpenVINO: not with --runtime tensorflow",
        ),
        ([], {"MAX_BATCH_WAIT_MS": "inf"}, "MAX_BATCH_WAIT_MS"),
        ([], {"MODEL_FETCH_TIMEOUT_SECONDS": "-1"}, "MODEL_FETCH_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_value_is_refused_by_name(monkeypatch, capsys, argv, env, named):
    with pytest.raises(SystemExit) as exit_:
        settings_from(monkeypatch, argv, **env)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_defaults_reach_the_parts_that_use_them():
    from predictor.imaging import ImageLimits
    from predictor.settings import OPTIONS

    settings = parse_settings([], env={})
    assert settings.limits == ImageLimits()
    assert settings.max_batch_wait == 0.002
    assert settings.model_uri == ""  # the demo model
    assert settings.precision == "fp32"  # Keras's values unless asked otherwise
    assert (settings.calibration_dir / "README.md").is_file()
    assert len({option.flag for option in OPTIONS}) == len(OPTIONS)
    names = [name for option in OPTIONS for name in option.variables]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("verify", "bundle", "expected"),
    [
        (None, None, True),
        ("0", None, False),
        ("off", "/ca.pem", False),
        ("yes", "/ca.pem", "/ca.pem"),
    ],
)
def test_s3_tls_verification(monkeypatch, verify, bundle, expected):
    from predictor.sources import s3

    for name, value in (("S3_VERIFY_SSL", verify), ("AWS_CA_BUNDLE", bundle)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert s3._verify() == expected


def test_a_bad_s3_verify_value_is_refused_by_name(monkeypatch):
    from predictor.sources import s3

    monkeypatch.setenv("S3_VERIFY_SSL", "nope")
    with pytest.raises(ModelSourceError, match="S3_VERIFY_SSL is not a boolean"):
        s3._verify()
