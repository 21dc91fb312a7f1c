"""Every kind of token, and what the proxy answers it, through to the real predictor."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from support.issuer import AUDIENCE, OTHER_AUDIENCE, SigningKey

METADATA = "/v2/models/cats-dogs-other"
REALM = 'Bearer realm="cats-dogs-other"'


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _claims(issuer) -> dict:
    now = int(time.time())
    return {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 600, "scope": "get::prediction"}


def _unsigned(issuer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": "key-1"}
    return b".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(_claims(issuer)).encode()), b""]
    ).decode()


def _hs256_with_the_public_key(issuer) -> str:
    """The key-confusion attack: HMAC-sign with the RSA public key as the shared secret.
    Signed by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    public_pem = (
        issuer.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-1"}
    message = _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(_claims(issuer)).encode())
    signature = _b64(hmac.new(public_pem, message, hashlib.sha256).digest())
    return (message + b"." + signature).decode()


# case: (how to build the Authorization header from the issuer, status, error, description)
CASES = {
    "no header": (lambda i: None, 401, None, "a bearer token is required"),
    "wrong scheme": (lambda i: "Basic dXNlcjpwYXNz", 401, None, "unsupported authorization"),
    "empty token": (lambda i: "Bearer", 401, "invalid_token", "empty bearer token"),
    "garbage": (lambda i: "Bearer not.a.jwt", 401, "invalid_token", "malformed token"),
    "wrong signature": (
        lambda i: "Bearer " + i.token(_impostor()),
        401,
        "invalid_token",
        "signature verification failed",
    ),
    "expired": (
        lambda i: "Bearer " + i.token(exp=int(time.time()) - 120),
        401,
        "invalid_token",
        "token expired",
    ),
    "expired within the leeway": (
        lambda i: "Bearer " + i.token(exp=int(time.time()) - 30),
        200,
        None,
        None,
    ),
    "not yet valid": (
        lambda i: "Bearer " + i.token(nbf=int(time.time()) + 300),
        401,
        "invalid_token",
        "token not yet valid",
    ),
    "issued in the future": (
        lambda i: "Bearer " + i.token(iat=int(time.time()) + 300),
        401,
        "invalid_token",
        "issued in the future",
    ),
    "no expiry": (lambda i: "Bearer " + i.token(exp=None), 401, "invalid_token", "no exp"),
    "wrong issuer": (
        lambda i: "Bearer " + i.token(iss="https://evil.example/"),
        401,
        "invalid_token",
        "wrong issuer",
    ),
    "wrong audience": (
        lambda i: "Bearer " + i.token(aud="https://elsewhere.example"),
        401,
        "invalid_token",
        "wrong audience",
    ),
    "audience as a list": (
        lambda i: "Bearer " + i.token(aud=["https://elsewhere.example", OTHER_AUDIENCE]),
        200,
        None,
        None,
    ),
    "scope in scope": (lambda i: "Bearer " + i.token(scope="get::prediction"), 200, None, None),
    "scope in scp as a string": (
        lambda i: "Bearer " + i.token(scope=None, scp="read get::prediction"),
        200,
        None,
        None,
    ),
    "scope in scp as a list": (
        lambda i: "Bearer " + i.token(scope=None, scp=["get::prediction"]),
        200,
        None,
        None,
    ),
    "scope in permissions": (
        lambda i: "Bearer " + i.token(scope="openid", permissions=["get::prediction"]),
        200,
        None,
        None,
    ),
    "missing scope": (
        lambda i: "Bearer " + i.token(scope="openid profile"),
        403,
        "insufficient_scope",
        "lacks the scope get::prediction",
    ),
    "scope as a prefix only": (
        lambda i: "Bearer " + i.token(scope="get::prediction-admin"),
        403,
        "insufficient_scope",
        "lacks the scope",
    ),
    "alg none": (lambda i: "Bearer " + _unsigned(i), 401, "invalid_token", "alg none"),
    "HS256 key confusion": (
        lambda i: "Bearer " + _hs256_with_the_public_key(i),
        401,
        "invalid_token",
        "algorithm HS256 is not allowed",
    ),
    "unknown kid": (
        lambda i: "Bearer " + i.token(_impostor(), headers={"kid": "never-published"}),
        401,
        "invalid_token",
        "no signing key with kid 'never-published'",
    ),
}

_IMPOSTOR = []


def _impostor() -> SigningKey:
    """A key of the same kid as the issuer's, that the issuer never published."""
    if not _IMPOSTOR:
        _IMPOSTOR.append(SigningKey("key-1"))
    return _IMPOSTOR[0]


@pytest.mark.parametrize("case", list(CASES))
def test_token_table(proxy, issuer, case):
    make_header, status, error, description = CASES[case]
    header = make_header(issuer)
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.get(f"http://127.0.0.1:{proxy.http_port}{METADATA}", headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["name"] == "cats-dogs-other"
        return
    challenge = response.headers["WWW-Authenticate"]
    body = response.json()
    assert challenge.startswith(REALM)
    if error is None:
        assert challenge == REALM  # RFC 6750 §3.1: no error code without bearer credentials
        assert body["error"] == "unauthorized"
    else:
        assert f'error="{error}"' in challenge
        assert body["error"] == error
    assert description in body["error_description"]
    if error is not None:
        assert description in challenge
    if error == "insufficient_scope":
        assert 'scope="get::prediction"' in challenge
        assert body["scope"] == "get::prediction"


def test_token_in_the_query_string_is_refused(proxy, issuer):
    url = f"http://127.0.0.1:{proxy.http_port}{METADATA}?access_token={issuer.token()}"
    response = httpx.get(url)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_es256_is_refused_unless_allowed(proxy, issuer):
    key = SigningKey("ec-key", "ES256")
    issuer.keys.append(key)
    try:
        response = httpx.get(
            f"http://127.0.0.1:{proxy.http_port}{METADATA}",
            headers={"Authorization": "Bearer " + issuer.token(key)},
        )
    finally:
        issuer.keys.remove(key)
    assert response.status_code == 401
    assert "algorithm ES256 is not allowed (allowed: RS256)" in response.json()["error_description"]


def test_tokens_never_reach_the_logs(proxy, issuer):
    token = issuer.token(scope="openid")  # refused: 403, logged
    httpx.get(
        f"http://127.0.0.1:{proxy.http_port}{METADATA}",
        headers={"Authorization": f"Bearer {token}"},
    )
    log = proxy.log()
    assert "refused GET /v2/models/cats-dogs-other: 403" in log
    assert token.split(".")[2] not in log
    assert token.split(".")[1] not in log
