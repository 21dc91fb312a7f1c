"""The local development issuer, end to end: keys and JWKS on disk, a token from the CLI, the
proxy reading the JWKS from a file:// URI, an inference through it."""

from __future__ import annotations

import subprocess
import sys

import httpx

from support.clients import INFER, json_request, values_of
from support.images import rgb_png
from support.servers import ROOT, start_proxy


def run(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "auth_proxy", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_dev_keys_and_dev_token_work_with_the_proxy(predictor, tmp_path):
    keys = tmp_path / "dev-issuer"
    settings = dict(line.split("=", 1) for line in run("dev-keys", "--dir", str(keys)).split())
    assert settings["OAUTH2_JWKS_URI"] == f"file://{keys / 'jwks.json'}"
    assert (keys / "private.pem").stat().st_mode & 0o077 == 0
    token = run(
        "dev-token", "--dir", str(keys), "--scope", "get::prediction", "--ttl", "1h"
    ).strip()
    short = run("dev-token", "--dir", str(keys), "--scope", "openid", "--ttl", "90s").strip()

    process = start_proxy(tmp_path, **settings, upstream=predictor)
    try:
        url = f"http://127.0.0.1:{process.http_port}{INFER}"
        answer = httpx.post(
            url,
            json=json_request([rgb_png()]),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert answer.status_code == 200
        assert values_of(answer.json())[0][0] in ("Cat", "Dog", "Other")
        refused = httpx.post(
            url, json=json_request([rgb_png()]), headers={"Authorization": f"Bearer {short}"}
        )
        assert refused.status_code == 403
    finally:
        process.stop()
