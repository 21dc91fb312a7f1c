"""The predictor's settings: one declared table (flag, variable, type, default, help), read once.

Flags win over environment variables, which win over the defaults in `OPTIONS`; `python -m
predictor --help` lists them all. Every value is parsed by its declared type, and a bad one is
refused by name (`MAX_IMAGES_PER_REQUEST (or --max_images_per_request): 'abc' is not a whole
number`, exit 2) rather than ending in a traceback or silently becoming a default. The result is
one frozen `Settings`, passed down whole. KServe's own model-server flags (`--http_port`,
`--grpc_port`, `--enable_grpc`, ...) come from its parser, as KServe documents them.

docs/configuration.md is written from `OPTIONS` (`python -m tools.config_docs`): the help texts
are the page's "what it does" column, so they say everything a user needs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import kserve_glue
from .contract import MODEL_NAME
from .imaging import ImageLimits
from .precision.calibration import DEFAULT_DIR as DEFAULT_CALIBRATION_DIR
from .precision.calibration import MIN_CALIBRATION_PHOTOS
from .precision.guard import MIN_GUARD_IMAGES, PRECISION_CHOICES
from .runtime.cpus import available_cpus
from .runtime.runtimes import RUNTIME_CHOICES
from .setting_types import boolean, choice, count, count_or_zero, seconds, web_url

_IMAGE_LIMITS = ImageLimits()  # its defaults are the predictor's defaults


class SettingsError(ValueError):
    """A value is wrong; the message names the flag and the variable."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cats-dogs-other" / "models"


@dataclass(frozen=True)
class Option:
    field: str  # the `Settings` attribute
    flag: str
    variables: tuple[str, ...]  # the first one set wins
    kind: Callable[[str], Any]
    default: Any  # a value, or a function of nothing that gives it (computed at start-up)
    help: str


OPTIONS: tuple[Option, ...] = (
    Option(
        "model_uri", "--model_uri", ("MODEL_URI", "STORAGE_URI"), str, "",
        "Where the model is: a .keras file or a folder with one, s3://..., runs:/..., "
        "models:/..., mlflow-experiment:<name>; KServe's STORAGE_URI too. Empty: the built-in "
        "demo model.",
    ),
    Option(
        "model_path", "--model_path", ("MODEL_PATH",), str, "",
        "A local .keras file or a folder holding one: the same as --model_uri with a path.",
    ),
    Option(
        "cache_dir", "--model_cache_dir", ("MODEL_CACHE_DIR",), Path, default_cache_dir,
        "Where downloaded models are kept and reused, and what a load decided (the OpenVINO "
        "model, runtime, precision, batch size), so a restart is ready in seconds.",
    ),
    Option(
        "fetch_timeout", "--model_fetch_timeout", ("MODEL_FETCH_TIMEOUT_SECONDS",), seconds,
        300.0, "How long to retry an unreachable model source before giving up (seconds).",
    ),
    Option(
        "listen_host", "--listen_host", ("PREDICTOR_LISTEN_HOST",), str, "127.0.0.1",
        "Address REST and gRPC listen on. Loopback keeps the auth proxy the only door; use "
        "0.0.0.0 to serve without it (KServe alone hard-codes 0.0.0.0 / [::]).",
    ),
    Option(
        "max_images", "--max_images_per_request", ("MAX_IMAGES_PER_REQUEST",), count, 32,
        "Most images one request may carry; more get 413 / RESOURCE_EXHAUSTED.",
    ),
    Option(
        "max_image_bytes", "--max_image_bytes", ("MAX_IMAGE_BYTES",), count,
        _IMAGE_LIMITS.max_bytes,
        "Largest encoded image file; larger get 413 / RESOURCE_EXHAUSTED.",
    ),
    Option(
        "max_image_pixels", "--max_image_pixels", ("MAX_IMAGE_PIXELS",), count,
        _IMAGE_LIMITS.max_pixels,
        "Largest decoded image, width x height: a decompression-bomb guard; larger get 413 / "
        "RESOURCE_EXHAUSTED.",
    ),
    Option(
        "max_request_bytes", "--max_request_bytes", ("MAX_REQUEST_BYTES",), count,
        64 * 1024 * 1024, "Largest REST body or gRPC message; larger get 413 / RESOURCE_EXHAUSTED.",
    ),
    Option(
        "decode_threads", "--decode_threads", ("DECODE_THREADS",), count, available_cpus,
        "Most threads decoding images in parallel; default: the CPUs of the container's "
        "quota. Fewer once the model is loaded if the memory budget cannot hold that many "
        "decodes of the largest ordinary photo (a 40-megapixel JPEG: 192 MiB) at once.",
    ),
    Option(
        "memory_budget_bytes", "--memory_budget_bytes", ("MEMORY_BUDGET_BYTES",),
        count_or_zero, 0,
        "Bytes requests may hold at once (bodies, messages, parsed JSON, pixels, decodes); more "
        "get 429 / RESOURCE_EXHAUSTED. 0: three quarters of what the container's memory limit "
        "(cgroup memory.max) leaves above the loaded model; 1 GiB without a limit.",
    ),
    Option(
        "runtime", "--runtime", ("PREDICTOR_RUNTIME",), choice(*RUNTIME_CHOICES), "auto",
        "auto: convert the model to OpenVINO, check it gives Keras's values, time both and "
        "serve with the faster. openvino, or tensorflow (a compiled tf.function): that one.",
    ),
    Option(
        "precision", "--precision", ("PRECISION",), choice(*PRECISION_CHOICES), "fp32",
        "fp32: Keras's values. int8 (NNCF quantization) or bf16 (CPUs with AVX512_BF16 or "
        "AMX): faster, served only when the accuracy guard passes at load (top-1 agreement "
        "with fp32 on held-out photos >= 95 % with 95 % confidence, a one-sided exact bound; "
        "accuracy not lower), else fp32. auto: the fastest that passes. Reduced precisions "
        "run on OpenVINO.",
    ),
    Option(
        "calibration_dir", "--calibration_dir", ("CALIBRATION_DIR",), Path,
        DEFAULT_CALIBRATION_DIR,
        f"Photos to calibrate int8 on (a quarter) and to judge reduced precisions with (the "
        f"rest: at least {MIN_GUARD_IMAGES} for the guard's bound, so {MIN_CALIBRATION_PHOTOS} "
        "photos or more), split by content; "
        "sub-folders cat/, dog/, other/ label them. Regular files only (links followed: a "
        "ConfigMap works), each within --max_image_bytes, hidden names skipped; too few "
        "distinct photos refuse the reduced precision in one line and serve fp32. They are "
        "also the reference photos of the model monitoring's baseline (all of them: the mix "
        "of labels predicted and the confidence the drift alerts compare live answers with; "
        "none under 20 photos). Default: the 85 course photos shipped with the predictor.",
    ),
    Option(
        "inference_threads", "--inference_threads", ("INFERENCE_THREADS",), count,
        available_cpus,
        "Threads for inference: OpenVINO's latency model uses them all for one call, its "
        "throughput model runs one single-thread stream on each. Default: the CPUs of the "
        "container's quota.",
    ),
    Option(
        "max_batch_size", "--max_batch_size", ("MAX_BATCH_SIZE",), count_or_zero, 0,
        "Most images the batcher puts in one model call; 0: measured at load, the largest "
        "batch within 5 % of the model's best images/s on this CPU (2-4 for the demo model, "
        "more for big models), shown in the log and in the model's metadata.",
    ),
    Option(
        "max_batch_wait_ms", "--max_batch_wait_ms", ("MAX_BATCH_WAIT_MS",), seconds, 2.0,
        "Longest a request waits (ms) for others to share its model call, only while other "
        "calls run: on an idle model it goes at once.",
    ),
    Option(
        "log_requests", "--log_requests", ("LOG_REQUESTS",), boolean, False,
        "A log line per request: the access log, the gRPC method and KServe's latency line. "
        "Off by default: behind the auth proxy, at hundreds of requests a second, they cost "
        "the event loop a tenth of its time and say nothing a metric does not. Off, the log "
        "holds start-up, refusals and errors only, and /metrics counts requests.",
    ),
    Option(
        "oauth2_token_url", "--oauth2_token_url", ("OAUTH2_TOKEN_URL",), web_url, "",
        "The issuer's token endpoint (its openid-configuration's token_endpoint; https, or "
        "http on loopback; no user info): /docs then offers OAuth2 client credentials beside "
        "the bearer token. An internationalised host is used in its ASCII form (xn--...); a "
        "URL that cannot be written in ASCII stops the start with the reason. Empty: the "
        "bearer token only.",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything the predictor is told, parsed and checked: the model, the server, the doors."""

    model_uri: str  # "": the built-in demo model
    cache_dir: Path
    fetch_timeout: float
    listen_host: str
    max_images: int
    max_image_bytes: int
    max_image_pixels: int
    max_request_bytes: int
    decode_threads: int
    memory_budget_bytes: int  # 0: sized from the memory limit once the model is loaded
    runtime: str
    precision: str
    calibration_dir: Path
    inference_threads: int
    max_batch_size: int  # 0: measured at load
    max_batch_wait_ms: float
    log_requests: bool
    oauth2_token_url: str = ""  # "": /docs offers the bearer token only
    model_name: str = MODEL_NAME
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)

    @property
    def max_batch_wait(self) -> float:
        """In seconds."""
        return self.max_batch_wait_ms / 1000


def _shown_default(option: Option) -> str:
    if callable(option.default) and not isinstance(option.default, type):
        return "computed at start-up"
    return repr(option.default) if option.default != "" else "none"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Serve the cats / dogs / other Keras classifier over V2 REST and gRPC.",
        parents=[kserve_glue.kserve_parser()],
    )
    parser.set_defaults(model_name=MODEL_NAME)
    for option in OPTIONS:
        names = " or ".join(option.variables)
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            metavar=option.variables[0],
            # argparse %-formats help texts: a literal "%" (as in "99 %") must be doubled.
            help=f"{option.help} (env {names}; default: {_shown_default(option)})".replace(
                "%", "%%"
            ),
        )
    return parser


def value_of(option: Option, given: str | None, env: Mapping[str, str]) -> Any:
    """The flag's text, else the first variable set (and not empty), else the default."""
    text: str | None = given
    source: str | None = option.flag
    if text is None:
        source, text = next(((n, env[n]) for n in option.variables if env.get(n)), (None, None))
    if text is None:
        return option.default() if callable(option.default) else option.default
    try:
        return option.kind(text)
    except ValueError as exc:
        where = source if source == option.flag else f"{source} (or {option.flag})"
        raise SettingsError(f"{where}: {text[:60]!r} {exc}") from None


def parse_settings(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Parse flags and variables into `Settings`; a bad value exits 2 with a line naming it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    try:
        values = {o.field: value_of(o, getattr(args, o.field), env) for o in OPTIONS}
    except SettingsError as exc:
        parser.error(str(exc))
    if values["precision"] != "fp32" and values["runtime"] == "tensorflow":
        parser.error(
            f"--precision {values['precision']} runs on OpenVINO: not with --runtime tensorflow"
        )
    if values["model_uri"] and values["model_path"]:
        parser.error("give --model_uri or --model_path, not both")
    model_path = values.pop("model_path")
    values["model_uri"] = values["model_uri"] or model_path
    return Settings(
        **values,
        model_name=args.model_name,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
    )
