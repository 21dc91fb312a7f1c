"""A real, certified OpenID provider on loopback: panva's `oidc-provider` (tests/oidc), as an
M2M issuer of JWT access tokens for the API (client credentials + resource indicators).

`OidcProvider` writes the provider's configuration (fresh keys, two clients: one granted the
proxy's scope, one granted another), runs `node tests/oidc/provider.mjs`, and can be stopped,
started again, and restarted with a new key set (rotation) on the same address.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from .servers import ROOT, free_port

PROVIDER = ROOT / "tests" / "oidc"
AUDIENCE = "https://cats-dogs-other.example.com/api"
SCOPE = "get::prediction"
OTHER = "read::reports"
CLIENT = ("m2m-client", "m2m-secret-do-not-log")
NO_SCOPE_CLIENT = ("m2m-no-scope", "other-secret-do-not-log")
# Characters RFC 6749 2.3.1 says to form-encode before HTTP Basic: a client with all of them.
ODD_CLIENT = ("odd:client id", "p@ss:w+rd/%~ x")


def install() -> None:
    """The pinned provider (package-lock.json), installed once (`make venv` does it too)."""
    if (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: `make venv` installs Debian's nodejs and npm")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER, check=True)


def private_jwks(kid_suffix: str) -> dict:
    """A fresh RSA key (RS256, PS256) and a P-256 key (ES256), as private JWKs."""
    rsa_key = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048)))
    ec_key = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    return {
        "keys": [{**rsa_key, "kid": f"rsa-{kid_suffix}"}, {**ec_key, "kid": f"ec-{kid_suffix}"}]
    }


class OidcProvider:
    def __init__(self, folder: Path, algorithm: str = "RS256"):
        install()
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.algorithm = algorithm
        self.generation = 1
        self.jwks = private_jwks("1")
        self.process: subprocess.Popen | None = None
        self.start()

    def _config(self) -> Path:
        path = self.folder / f"provider-{self.port}.json"
        clients = [
            {"client_id": CLIENT[0], "client_secret": CLIENT[1], "scope": SCOPE},
            {"client_id": ODD_CLIENT[0], "client_secret": ODD_CLIENT[1], "scope": SCOPE},
            # Granted another scope only (oidc-provider wants a non-empty one).
            {"client_id": NO_SCOPE_CLIENT[0], "client_secret": NO_SCOPE_CLIENT[1], "scope": OTHER},
        ]
        path.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "issuer": self.url,
                    "audience": AUDIENCE,
                    "scopes": [SCOPE, OTHER],
                    "alg": self.algorithm,
                    "jwks": self.jwks,
                    "clients": clients,
                }
            )
        )
        return path

    def start(self) -> None:
        log = open(self.folder / f"provider-{self.port}.log", "ab")  # noqa: SIM115 (the child's)
        self.process = subprocess.Popen(
            ["node", str(PROVIDER / "provider.mjs"), str(self._config())],
            cwd=PROVIDER,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                discovery = f"http://127.0.0.1:{self.port}/.well-known/openid-configuration"
                if httpx.get(discovery, timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"oidc-provider did not start: {self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rotate(self) -> None:
        """Restart with a new key set (new kids): tokens are signed with the new keys at once."""
        self.stop()
        self.generation += 1
        self.jwks = private_jwks(str(self.generation))
        self.start()

    def log(self) -> str:
        return (self.folder / f"provider-{self.port}.log").read_text(errors="replace")

    def proxy_settings(self, algorithms: str | None = None) -> dict[str, str]:
        return {
            "OAUTH2_ISSUER": self.url,
            "OAUTH2_AUDIENCE": AUDIENCE,
            "OAUTH2_ALGORITHMS": algorithms or self.algorithm,
        }
