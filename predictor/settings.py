"""The predictor's settings: KServe's model-server flags plus ours, each with an env default.

One parser, one `Settings` object per process. Flags win over environment variables, which win
over the defaults below; `python -m predictor --help` lists them all.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from kserve import model_server

from .contract import MODEL_NAME
from .cpus import available_cpus
from .imaging import ImageLimits
from .runtime import RUNTIMES

MIB = 1024 * 1024


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return _true(value) if value else default


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cats-dogs-other" / "models"


@dataclass(frozen=True)
class Settings:
    model_name: str
    model_uri: str
    cache_dir: Path
    fetch_timeout: float
    listen_host: str
    http_port: int
    grpc_port: int
    enable_grpc: bool
    max_images: int
    max_request_bytes: int
    decode_threads: int
    limits: ImageLimits
    runtime: str
    inference_threads: int
    max_batch_size: int
    max_batch_wait: float
    log_requests: bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Serve the cats / dogs / other Keras classifier over V2 REST and gRPC.",
        parents=[model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(model_name=MODEL_NAME)
    env = os.environ.get
    parser.add_argument(
        "--model_uri",
        default=env("MODEL_URI") or env("STORAGE_URI"),
        help="Where the model is: a .keras file or a folder with one, s3://…, runs:/…, "
        "models:/…, mlflow-experiment:<name> (env MODEL_URI, else KServe's STORAGE_URI). "
        "None: the built-in demo model.",
    )
    parser.add_argument(
        "--model_path",
        default=env("MODEL_PATH"),
        help="A local .keras file or a folder holding one: the same as --model_uri with a path "
        "(env MODEL_PATH).",
    )
    parser.add_argument(
        "--model_cache_dir",
        default=env("MODEL_CACHE_DIR", str(_default_cache_dir())),
        help="Where downloaded models are kept and reused (env MODEL_CACHE_DIR).",
    )
    parser.add_argument(
        "--model_fetch_timeout",
        type=float,
        default=float(env("MODEL_FETCH_TIMEOUT_SECONDS") or 300),
        help="How long to retry an unreachable model source before giving up "
        "(env MODEL_FETCH_TIMEOUT_SECONDS).",
    )
    parser.add_argument(
        "--listen_host",
        default=env("PREDICTOR_LISTEN_HOST", "127.0.0.1"),
        help="Address REST and gRPC listen on. Loopback keeps the auth proxy the only door; "
        "use 0.0.0.0 to serve without it (env PREDICTOR_LISTEN_HOST).",
    )
    parser.add_argument(
        "--max_images_per_request",
        type=int,
        default=_env_int("MAX_IMAGES_PER_REQUEST", 32),
        help="Most images one request may carry; more get 413 (env MAX_IMAGES_PER_REQUEST).",
    )
    parser.add_argument(
        "--max_image_bytes",
        type=int,
        default=_env_int("MAX_IMAGE_BYTES", 10 * MIB),
        help="Largest encoded image file; larger get 413 (env MAX_IMAGE_BYTES).",
    )
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=_env_int("MAX_IMAGE_PIXELS", 40_000_000),
        help="Largest decoded image, width x height: a decompression-bomb guard "
        "(env MAX_IMAGE_PIXELS).",
    )
    parser.add_argument(
        "--max_request_bytes",
        type=int,
        default=_env_int("MAX_REQUEST_BYTES", 64 * MIB),
        help="Largest REST body or gRPC message; larger get 413 / RESOURCE_EXHAUSTED "
        "(env MAX_REQUEST_BYTES).",
    )
    parser.add_argument(
        "--decode_threads",
        type=int,
        default=_env_int("DECODE_THREADS", available_cpus()),
        help="Threads decoding images in parallel; default: the CPUs of the container's quota "
        "(env DECODE_THREADS).",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=env("PREDICTOR_RUNTIME", "auto"),
        help="auto: the faster of OpenVINO and TensorFlow, measured at load "
        "(env PREDICTOR_RUNTIME).",
    )
    parser.add_argument(
        "--inference_threads",
        type=int,
        default=_env_int("INFERENCE_THREADS", available_cpus()),
        help="Threads one model call uses; default: the CPUs of the container's quota "
        "(env INFERENCE_THREADS).",
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=_env_int("MAX_BATCH_SIZE", 0),
        help="Most images the batcher puts in one model call; 0: the smallest batch that gives "
        "the model's best images/s on this CPU, measured at load (env MAX_BATCH_SIZE).",
    )
    parser.add_argument(
        "--max_batch_wait_ms",
        type=float,
        default=float(env("MAX_BATCH_WAIT_MS") or 2),
        help="Longest a request waits for others to share its model call, only while other "
        "calls run: on an idle model it goes at once (env MAX_BATCH_WAIT_MS).",
    )
    parser.add_argument(
        "--log_requests",
        type=_true,
        default=_env_bool("LOG_REQUESTS", False),
        help="A log line per request: the access log, the gRPC method and KServe's latency "
        "line. Off by default: behind the auth proxy, at hundreds of requests a second, they "
        "cost the event loop a tenth of its time and say nothing a metric does not "
        "(env LOG_REQUESTS).",
    )
    return parser


def parse_settings(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_uri and args.model_path:
        parser.error("give --model_uri or --model_path, not both")
    model_uri = args.model_uri or args.model_path or ""  # "": the built-in demo model
    settings = Settings(
        model_name=args.model_name,
        model_uri=model_uri,
        cache_dir=Path(args.model_cache_dir),
        fetch_timeout=args.model_fetch_timeout,
        listen_host=args.listen_host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        max_images=args.max_images_per_request,
        max_request_bytes=args.max_request_bytes,
        decode_threads=args.decode_threads,
        limits=ImageLimits(max_bytes=args.max_image_bytes, max_pixels=args.max_image_pixels),
        runtime=args.runtime,
        inference_threads=args.inference_threads,
        max_batch_size=args.max_batch_size,
        max_batch_wait=args.max_batch_wait_ms / 1000,
        log_requests=args.log_requests,
    )
    return settings, args
