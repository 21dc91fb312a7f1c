"""Property-based tests of the pure parts of the door: `tokens.validate` over arbitrary
headers, claims and signatures (a refusal or a valid principal, never another exception; never
accepted without a good signature), and what the proxy writes from them (headers, log lines)."""

from __future__ import annotations

import base64
import json
import re
import time

import jwt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auth_proxy import answers, logsafe, passing
from auth_proxy.auth import bearer_token
from auth_proxy.settings import TokenRules
from auth_proxy.tokens import Principal, SigningKey, TokenRejected, validate
from support.issuer import SigningKey as IssuerKey

ISSUER = "https://issuer.example/"
AUDIENCE = "https://cats-dogs.example.com"
RULES = TokenRules(issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("RS256", "ES256"))
NOW = 1_800_000_000
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = IssuerKey("key-1")
OTHER = IssuerKey("key-1")  # same kid, another key: a forged signature
KEYS = {"key-1": SigningKey(jwt.PyJWK.from_dict(KEY.public_jwk).key, "RS256")}

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
times = st.integers(NOW - 10**6, NOW + 10**6) | st.floats() | json_values
# Claims near a valid token: each standard claim may be right, absent, or anything at all.
claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | json_values,
        "aud": st.just(AUDIENCE)
        | st.lists(st.just(AUDIENCE) | json_values, max_size=3)
        | json_values,
        "exp": st.just(NOW + 600) | times,
        "nbf": st.just(NOW - 10) | times,
        "iat": st.just(NOW) | times,
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
        return validate(token, KEYS, RULES, NOW)
    except TokenRejected as exc:
        assert isinstance(exc.description, str) and exc.description
        assert re.fullmatch(r"[\x20-\x7e]*", exc.description), exc.description
        return None


def b64(value: bytes) -> str:
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
        assert NOW - 60 <= principal.expires_at < 253402300801


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
        [b64(json.dumps(header, allow_nan=True).encode()), b64(payload), b64(signature)]
    )
    assert outcome(token) is None


@PROPERTIES
@given(st.text(max_size=300))
def test_any_text_is_refused(text):
    assert outcome(text) is None


@PROPERTIES
@given(st.text(max_size=200))
def test_an_authorization_header_is_a_token_or_a_refusal(value):
    try:
        assert bearer_token(value)
    except answers.Refusal as refusal:
        assert refusal.status in (400, 401)


@PROPERTIES
@given(st.text(), st.lists(st.from_regex(r"[\x21\x23-\x5b\x5d-\x7e]+", fullmatch=True)))
def test_the_identity_passed_on_is_header_safe(subject, scopes):
    for _, value in passing.identity(Principal(subject, tuple(scopes))):
        assert re.fullmatch(r"[\x20-\x7e]*", value)
        assert value == value.strip()


@PROPERTIES
@given(st.text(max_size=500), st.text(max_size=50))
def test_a_challenge_is_always_a_valid_header(description, realm):
    challenge = answers.www_authenticate(answers.invalid_token(description), realm)
    assert re.fullmatch(r"[\x20-\x7e]+", challenge)
    assert len(challenge) < 800


@PROPERTIES
@given(st.text(), st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_", min_size=8))
def test_a_clean_log_line_has_no_control_character_and_no_token(text, secret):
    token = f"eyJ{secret}.eyJ{secret}.{secret}"
    line = logsafe.clean(f"{text} Authorization: Bearer {token}\x00{text}")
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    assert token not in line and f"Bearer {secret}" not in line


@pytest.mark.parametrize(
    ("pairs", "peer", "trusted", "expected"),
    [
        ([("X-Forwarded-For", "203.0.113.66")], "10.0.0.5", (), "10.0.0.5"),
        (
            [("X-Forwarded-For", "203.0.113.66")],
            "10.0.0.5",
            ("10.0.0.0/8",),
            "203.0.113.66, 10.0.0.5",
        ),
        ([], "::1", ("::1",), "::1"),
        ([("X-Forwarded-For", "1.2.3.4")], None, ("0.0.0.0/0",), "unknown"),
    ],
)
def test_forwarded_for_follows_the_trust_model(pairs, peer, trusted, expected):
    networks = passing.parse_networks(",".join(trusted))
    passed = dict(passing.passed_on(pairs, peer, networks))
    assert passed["x-forwarded-for"] == expected


def test_the_time_is_fixed_for_the_properties():
    assert time.time() - 10**9 < NOW  # a plausible now, so valid tokens exist in the space
