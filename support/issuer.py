"""A real OIDC issuer for the tests: discovery document and JWKS over HTTP on 127.0.0.1, keys
generated in the test, rotation, and an outage switch."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .servers import free_port

AUDIENCE = "https://cats-dogs.example.com"
OTHER_AUDIENCE = "https://other-api.example.com"


class SigningKey:
    def __init__(self, kid: str, algorithm: str = "RS256"):
        self.kid = kid
        self.algorithm = algorithm
        if algorithm.startswith("ES"):
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.public_jwk = json.loads(
                jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())
            )
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.public_jwk = json.loads(
                jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
            )
        self.public_jwk.update({"kid": kid, "use": "sig"})


class Issuer:
    """Serves `/.well-known/openid-configuration` and `/jwks.json`; counts JWKS fetches."""

    def __init__(self, padding: int = 0):
        self.padding = padding  # bytes of filler in the JWKS document: an oversized key set
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.keys = [SigningKey("key-1")]
        self.jwks_fetches = 0
        self._server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "jwks.json"}
                elif self.path == "/jwks.json":
                    issuer.jwks_fetches += 1
                    body = {"keys": [key.public_jwk for key in issuer.keys]}
                    if issuer.padding:
                        body["padding"] = "x" * issuer.padding
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def rotate(self, kid: str) -> SigningKey:
        key = SigningKey(kid)
        self.keys.append(key)
        return key

    def token(self, key: SigningKey | None = None, *, headers: dict | None = None, **claims) -> str:
        """A token signed by `key` (default: the first), with sensible claims overridable."""
        key = key or self.keys[0]
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-42",
            "scope": "openid get::prediction",
            "iat": now,
            "exp": now + 600,
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        header = {"kid": key.kid, **(headers or {})}
        return jwt.encode(payload, key.private, algorithm=key.algorithm, headers=header)


def issuer_env(issuer: Issuer) -> dict[str, str]:
    """The proxy's settings for tokens from `issuer` (keys by discovery, either audience)."""
    return {
        "OAUTH2_ISSUER": issuer.url,
        "OAUTH2_AUDIENCE": f"{AUDIENCE},{OTHER_AUDIENCE}",
        "JWKS_MIN_REFRESH_SECONDS": "2",
    }


def dev_issuer(folder: Path) -> tuple[dict[str, str], str]:
    """A development issuer in `folder` (the proxy's own `dev-keys`): the proxy's settings for
    it, and a 2-hour token with the prediction scope. For the benchmarks' pods."""
    from auth_proxy import devkeys

    devkeys.write_dev_keys(folder)
    return devkeys.proxy_settings(folder), devkeys.dev_token(folder, "get::prediction", 7200)
