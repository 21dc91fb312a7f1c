"""`tokens.validate`, table-driven and in process: each way a token can be wrong gives the
refusal naming the failed check; a good token gives its principal."""

from __future__ import annotations

import time

import jwt
import pytest

from auth_proxy.settings import TokenRules
from auth_proxy.tokens import (
    InsufficientScope,
    Principal,
    SigningKey,
    TokenRejected,
    UnknownKey,
    granted_scopes,
    shown,
    validate,
)
from support.issuer import SigningKey as IssuerKey

ISSUER = "https://issuer.example/"
AUDIENCE = "https://cats-dogs.example.com"
NOW = time.time()
RSA = IssuerKey("rsa-1")
EC = IssuerKey("ec-1", "ES256")
STRANGER = IssuerKey("rsa-1")
KEYS = {
    key.kid: SigningKey(jwt.PyJWK.from_dict(key.public_jwk).key, key.algorithm) for key in (RSA, EC)
}
RULES = TokenRules(issuer=ISSUER, audiences=(AUDIENCE, "other"), algorithms=("RS256", "ES256"))


def token(key: IssuerKey = RSA, header: dict | None = None, **claims) -> str:
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "scope": "openid get::prediction",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}
    header = {"kid": key.kid, **(header or {})}
    header = {name: value for name, value in header.items() if value is not None}
    return jwt.encode(payload, key.private, algorithm=key.algorithm, headers=header)


def hs256() -> str:
    return jwt.encode({"iss": ISSUER}, "s" * 32, algorithm="HS256", headers={"kid": "rsa-1"})


REFUSED = {
    "garbage": (lambda: "garbage", TokenRejected, "malformed token"),
    "empty": (lambda: "", TokenRejected, "malformed token"),
    "not ASCII": (lambda: token() + "\u00e9", TokenRejected, "malformed token"),
    "alg none": (
        lambda: jwt.encode({"iss": ISSUER}, None, algorithm="none"),
        TokenRejected,
        "alg none",
    ),
    "HS256": (hs256, TokenRejected, "algorithm HS256 is not allowed"),
    "foreign signature": (lambda: token(STRANGER), TokenRejected, "signature verification"),
    "unknown kid": (lambda: token(header={"kid": "nope"}), UnknownKey, "kid 'nope'"),
    "kid for another algorithm": (
        lambda: token(header={"kid": "ec-1"}),
        TokenRejected,
        "is for ES256",
    ),
    "expired": (lambda: token(exp=int(NOW) - 120), TokenRejected, "token expired"),
    "no exp": (lambda: token(exp=None), TokenRejected, "no exp"),
    "not yet valid": (lambda: token(nbf=int(NOW) + 600), TokenRejected, "not yet valid"),
    "issued in the future": (lambda: token(iat=int(NOW) + 600), TokenRejected, "future (iat)"),
    "wrong issuer": (lambda: token(iss="https://evil/"), TokenRejected, "wrong issuer"),
    "wrong audience": (lambda: token(aud="nope"), TokenRejected, "wrong audience"),
    "no audience": (lambda: token(aud=None), TokenRejected, "wrong audience"),
    "audience list of non-strings": (lambda: token(aud=[1]), TokenRejected, "aud claim"),
    "float exp NaN": (lambda: token(exp=float("nan")), TokenRejected, "exp claim"),
    "exp past year 9999": (lambda: token(exp=10**12), TokenRejected, "exp claim"),
    "boolean nbf": (lambda: token(nbf=True), TokenRejected, "nbf claim"),
    "no scope": (lambda: token(scope="openid"), InsufficientScope, "lacks the scope"),
    "scope split on a tab": (
        lambda: token(scope="openid\tget::prediction"),
        TokenRejected,
        "malformed scope",
    ),
    "permissions as a string": (
        lambda: token(scope=None, permissions="get::prediction"),
        TokenRejected,
        "permissions claim",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(case):
    make, kind, description = REFUSED[case]
    with pytest.raises(TokenRejected) as refusal:
        validate(make(), KEYS, RULES, NOW)
    assert type(refusal.value) is kind
    assert description in refusal.value.description


ACCEPTED = {
    "scope string": ({}, ("openid", "get::prediction")),
    "audience in a list": ({"aud": ["x", "other"]}, ("openid", "get::prediction")),
    "scp list (Okta)": ({"scope": None, "scp": ["get::prediction"]}, ("get::prediction",)),
    "scp string (Azure AD)": (
        {"scope": None, "scp": "a get::prediction"},
        ("a", "get::prediction"),
    ),
    "permissions (Auth0 RBAC)": (
        {"scope": "openid", "permissions": ["get::prediction"]},
        ("openid", "get::prediction"),
    ),
    "expired within the leeway": ({"exp": int(NOW) - 30}, ("openid", "get::prediction")),
    "float dates": ({"exp": NOW + 600.5, "iat": NOW - 0.5}, ("openid", "get::prediction")),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepted(case):
    claims, scopes = ACCEPTED[case]
    principal = validate(token(**claims), KEYS, RULES, NOW)
    assert principal.subject == "user-42"
    assert principal.scopes == scopes


def test_an_ec_key_and_no_subject():
    assert validate(token(EC, sub=None), KEYS, RULES, NOW) == Principal(
        "", ("openid", "get::prediction"), float(int(NOW) + 600)
    )


def test_a_key_set_of_one_needs_no_kid():
    only = {"any": KEYS["rsa-1"]}
    assert validate(token(header={"kid": None}), only, RULES, NOW).subject == "user-42"


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("RS256", 40, "'RS256'"),
        ("a\nb\x1b", 40, "'a\\x0ab\\x1b'"),
        ("é", 40, "'\\xe9'"),
        ("x" * 50, 10, "'xxxxxxxxxx...'"),
        (["list"], 40, "'[\\'list\\']'"),
    ],
)
def test_shown_values_are_printable_and_short(value, limit, expected):
    assert shown(value, limit) == expected


def test_scopes_are_collected_in_order_without_duplicates():
    claims = {"scope": "a b", "scp": ["b", "c"], "permissions": ["c", "d"]}
    assert granted_scopes(claims) == ("a", "b", "c", "d")
