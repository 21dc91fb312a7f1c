"""Real storage servers for the tests: moto's S3 server and an `mlflow server` whose artifact
store is a bucket of it, both on 127.0.0.1, both started as separate processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx

from .servers import free_port

BIN = Path(sys.executable).parent
REGION = "us-east-1"


@dataclass
class S3Server:
    popen: subprocess.Popen
    port: int
    access_key: str = "setup"
    secret_key: str = "setup"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def env(self) -> dict[str, str]:
        """What a client of this store sets: the course's and KServe's variables."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)


def start_s3(log_dir: Path, *, with_auth: bool, port: int | None = None) -> S3Server:
    """moto in server mode. With auth, credentials are checked: the first requests create an
    IAM user allowed s3:*, whose key the server's clients then use."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
    if with_auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    log = open(log_dir / f"moto-{port}.log", "ab")  # noqa: SIM115 (lives as long as the server)
    popen = subprocess.Popen(
        [BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = S3Server(popen, port)
    _wait_for(f"{server.url}/moto-api/", popen, "moto")
    if with_auth:
        iam = boto3.client(
            "iam",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="mlops")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="mlops", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="mlops")["AccessKey"]
        server.access_key, server.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
    return server


@dataclass
class MlflowServer:
    popen: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server and the workers it started (its own process group)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)


def start_mlflow(workdir: Path, s3: S3Server, bucket: str) -> MlflowServer:
    """`mlflow server` with a SQLite store and its artifacts in s3://<bucket> (clients read
    them straight from S3, as with the course's MinIO)."""
    port = free_port()
    env = {**os.environ, **s3.env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(workdir / "mlflow.log", "ab")  # noqa: SIM115
    popen = subprocess.Popen(
        [
            BIN / "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--default-artifact-root",
            f"s3://{bucket}",
            "--no-serve-artifacts",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = MlflowServer(popen, port)
    _wait_for(f"{server.url}/health", popen, "mlflow server", timeout=120)
    return server


def _wait_for(url: str, popen: subprocess.Popen, name: str, timeout: float = 30) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited with {popen.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start within {timeout} s")
