"""`tokens.validate`, in process: table-driven, each way a token can be wrong gives the refusal
naming the failed check and a good token gives its principal; then property-based, over
arbitrary headers, claims and signatures: a refusal or a valid principal, never another
exception, never accepted without a good signature."""

from __future__ import annotations

import base64
import json
import re
import time

import jwt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

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

pytestmark = pytest.mark.unit

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


# The properties: a fixed, plausible now (so valid tokens exist in the space), one RSA key.
PROPERTY_RULES = TokenRules(issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("RS256", "ES256"))
PROPERTY_NOW = 1_800_000_000
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = IssuerKey("key-1")
OTHER = IssuerKey("key-1")  # same kid, another key: a forged signature
PROPERTY_KEYS = {"key-1": SigningKey(jwt.PyJWK.from_dict(KEY.public_jwk).key, "RS256")}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
times = st.integers(PROPERTY_NOW - 10**6, PROPERTY_NOW + 10**6) | st.floats() | json_values
# Claims near a valid token: each standard claim may be right, absent, or anything at all.
claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | json_values,
        "aud": st.just(AUDIENCE)
        | st.lists(st.just(AUDIENCE) | json_values, max_size=3)
        | json_values,
        "exp": st.just(PROPERTY_NOW + 600) | times,
        "nbf": st.just(PROPERTY_NOW - 10) | times,
        "iat": st.just(PROPERTY_NOW) | times,
        "sub": st.text(max_size=30) | json_values,
        "scope": st.just("get::prediction") | st.text(max_size=40) | json_values,
        "scp": st.lists(st.text(max_size=20), max_size=3) | json_values,
        "permissions": st.lists(st.just("get::prediction") | st.text(max_size=20)) | json_values,
    },
)
headers = st.fixed_dictionaries(
    {},
    optional={"kid": st.just("key-1") | json_values, "typ": json_values, "crit": json_values},
)


def outcome(token: str) -> Principal | None:
    try:
        return validate(token, PROPERTY_KEYS, PROPERTY_RULES, PROPERTY_NOW)
    except TokenRejected as exc:
        assert isinstance(exc.description, str) and exc.description
        assert re.fullmatch(r"[\x20-\x7e]*", exc.description), exc.description
        return None


def b64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


@PROPERTIES
@given(claims, headers)
def test_signed_claims_give_a_principal_or_a_refusal(payload, header):
    try:
        token = jwt.encode(payload, KEY.private, algorithm="RS256", headers=header)
    except (TypeError, ValueError, jwt.PyJWTError):
        assume(False)  # PyJWT will not sign it: nothing to send
    principal = outcome(token)
    if principal is not None:
        assert payload["iss"] == ISSUER
        assert "get::prediction" in principal.scopes
        assert PROPERTY_NOW - 60 <= principal.expires_at < 253402300801


@PROPERTIES
@given(claims, headers)
def test_nothing_passes_without_the_right_signature(payload, header):
    try:
        token = jwt.encode(payload, OTHER.private, algorithm="RS256", headers=header)
    except (TypeError, ValueError, jwt.PyJWTError):
        assume(False)
    assert outcome(token) is None


@PROPERTIES
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4) | json_values,
    st.binary(max_size=60),
    st.binary(max_size=60),
)
def test_arbitrary_headers_payloads_and_signatures_are_refused(header, payload, signature):
    token = ".".join(
        [b64url(json.dumps(header, allow_nan=True).encode()), b64url(payload), b64url(signature)]
    )
    assert outcome(token) is None


@PROPERTIES
@given(st.text(max_size=300))
def test_any_text_is_refused(text):
    assert outcome(text) is None


def test_the_time_is_fixed_for_the_properties():
    assert time.time() - 10**9 < PROPERTY_NOW  # a plausible now: valid tokens exist in the space
