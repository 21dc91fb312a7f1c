"""Start the project's real processes on loopback for the tests, and wait until they serve."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Process:
    """A server process of ours, its log, and what its start-up looked like from outside."""

    popen: subprocess.Popen
    log_path: Path
    http_port: int
    grpc_port: int
    admin_port: int = 0
    # (seconds since start, live status, ready status) for each poll while it came up
    start_polls: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_predictor(
    model_path: str | Path, log_dir: Path, *args: str, root: Path = ROOT, **env: str
) -> Process:
    """Run `python -m predictor` (from the checkout at `root`) on free ports; return once it has
    started (not necessarily ready). Use `wait_ready` to wait for the model."""
    http_port, grpc_port = free_port(), free_port()
    log_path = log_dir / f"predictor-{http_port}.log"
    command = [
        sys.executable,
        "-m",
        "predictor",
        "--model_path",
        str(model_path),
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        *args,
    ]
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            command,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A cache of its own unless the test gives one: a load decided by an earlier
            # test (or run) would make this start warm, and what it logs depend on history.
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "MODEL_CACHE_DIR": str(log_dir / f"cache-{http_port}"),
                **env,
            },
        )
    return Process(popen, log_path, http_port, grpc_port)


def wait_ready(process: Process, timeout: float = 180) -> Process:
    """Poll live and ready every 20 ms until ready; record what each poll saw."""
    started = time.monotonic()
    with httpx.Client(base_url=process.url, timeout=2) as client:
        while time.monotonic() - started < timeout:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"predictor exited with {process.popen.returncode}:\n{process.log()[-3000:]}"
                )
            live = ready = 0
            with contextlib.suppress(httpx.TransportError):
                live = client.get("/v2/health/live").status_code
                ready = client.get("/v2/models/cats-dogs-other/ready").status_code
            if live:
                process.start_polls.append((time.monotonic() - started, live, ready))
            if ready == 200:
                return process
            time.sleep(0.02)
    process.stop()
    raise RuntimeError(f"predictor not ready after {timeout} s:\n{process.log()[-3000:]}")


def wait_exit(process: Process, timeout: float = 120) -> int:
    try:
        return process.popen.wait(timeout)
    finally:
        process.stop()


def start_proxy(
    log_dir: Path, *, wait_for_keys: bool = True, upstream: Process | None = None, **env: str
) -> Process:
    """Run `python -m auth_proxy` on free ports with `env` (and, given `upstream`, in front of
    that predictor); return once its first key fetch is over (ready, or not ready with the
    reason).
    `Process.http_port` is the REST door, `grpc_port` the gRPC door, `admin_port` its own."""
    http_port, grpc_port, admin_port = free_port(), free_port(), free_port()
    log_path = log_dir / f"proxy-{http_port}.log"
    if upstream is not None:
        env = {"UPSTREAM_HTTP": upstream.url, "UPSTREAM_GRPC": upstream.grpc_target, **env}
    settings = {
        "PROXY_LISTEN_HOST": "127.0.0.1",
        "PROXY_HTTP_PORT": str(http_port),
        "PROXY_GRPC_PORT": str(grpc_port),
        "PROXY_ADMIN_PORT": str(admin_port),
        **env,
    }
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "auth_proxy"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **settings},
        )
    process = Process(popen, log_path, http_port, grpc_port, admin_port)
    started = time.monotonic()
    while time.monotonic() - started < 30:
        if popen.poll() is not None:
            raise RuntimeError(f"auth-proxy exited with {popen.returncode}:\n{process.log()}")
        with contextlib.suppress(httpx.TransportError):
            ready = httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=1)
            # The ports open before the first key fetch; wait for its outcome, either way.
            fetched = ready.status_code == 200 or "not been fetched yet" not in ready.text
            if fetched or not wait_for_keys:
                return process
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"auth-proxy did not start:\n{process.log()}")
