"""A local issuer for development: a key pair, its JWKS, and tokens signed with it.

`python -m auth_proxy dev-keys` writes `private.pem`, `jwks.json` and `issuer.json` (issuer and
audience) into a folder; `python -m auth_proxy dev-token` prints a token signed by that key. The
proxy reads the JWKS with `OAUTH2_JWKS_URI=file://<folder>/jwks.json`. Never for production.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_ISSUER = "https://dev-issuer.local/"
DEV_AUDIENCE = "https://cats-dogs-other.local"


def write_dev_keys(folder: Path, issuer: str = DEV_ISSUER, audience: str = DEV_AUDIENCE) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex[:16]
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (folder / "private.pem").write_bytes(pem)
    (folder / "private.pem").chmod(0o600)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    public_jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    (folder / "jwks.json").write_text(json.dumps({"keys": [public_jwk]}, indent=2))
    config = {"issuer": issuer, "audience": audience, "kid": kid}
    (folder / "issuer.json").write_text(json.dumps(config, indent=2))
    return config


def proxy_settings(folder: Path) -> dict[str, str]:
    """The proxy's OAUTH2_* variables for the development issuer in `folder`."""
    config = json.loads((folder / "issuer.json").read_text())
    return {
        "OAUTH2_ISSUER": config["issuer"],
        "OAUTH2_AUDIENCE": config["audience"],
        "OAUTH2_JWKS_URI": f"file://{(folder / 'jwks.json').resolve()}",
    }


def parse_duration(text: str) -> int:
    """Seconds in '90', '90s', '15m', '1h' or '2d'."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def dev_token(folder: Path, scope: str, ttl_seconds: int, subject: str = "dev-user") -> str:
    config = json.loads((folder / "issuer.json").read_text())
    now = int(time.time())
    claims = {
        "iss": config["issuer"],
        "aud": config["audience"],
        "sub": subject,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    key = (folder / "private.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": config["kid"]})
