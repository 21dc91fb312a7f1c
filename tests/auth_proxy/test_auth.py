"""`auth`: the `Authorization` header to a bearer token (or the refusal saying why not), and
the `Authorizer`'s memory of tokens that passed: repeats skip the RSA verification, yet a token
stops at its expiry, and at once when the key set no longer holds its key. In process: the key
cache is fed the issuer's keys directly."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_proxy import auth
from auth_proxy.auth import bearer_token, one_credential
from auth_proxy.jwks import KeyCache
from auth_proxy.refusals import Refusal
from auth_proxy.settings import TokenRules
from support.issuer import AUDIENCE, SigningKey

pytestmark = pytest.mark.unit

ISSUER = "https://issuer.example/"
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("BEARER abc", "abc"),
        (None, 401),
        ("", 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("Bearer", 401),
        ("Bearer    ", 401),
    ],
)
def test_the_bearer_token_of_a_header(header, outcome):
    if isinstance(outcome, str):
        assert bearer_token(header) == outcome
    else:
        with pytest.raises(Refusal) as refusal:
            bearer_token(header)
        assert refusal.value.status == outcome


@PROPERTIES
@given(st.text(max_size=200))
def test_an_authorization_header_is_a_token_or_a_refusal(value):
    try:
        assert bearer_token(value)
    except Refusal as refusal:
        assert refusal.status in (400, 401)


def test_one_credential_only():
    assert one_credential([]) is None
    assert one_credential(["Bearer a"]) == "Bearer a"
    with pytest.raises(Refusal) as refusal:
        one_credential(["Bearer a", "Bearer a"])
    assert refusal.value.status == 400


class Keys:
    """An issuer's signing keys and the tokens it signs, in process."""

    def __init__(self) -> None:
        self.keys = [SigningKey("key-1")]

    def token(self, **claims) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-42",
            "scope": "openid get::prediction",
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        key = self.keys[0]
        return jwt.encode(payload, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


@pytest.fixture(scope="module")
def issuer_keys() -> Keys:
    return Keys()


def authorizer_for(issuer: Keys, leeway: float = 0.0) -> auth.Authorizer:
    async def fetch() -> dict:
        return {"keys": [key.public_jwk for key in issuer.keys]}

    keys = KeyCache(fetch, source="test", ttl_seconds=600, min_refresh_seconds=0)
    asyncio.run(keys.refresh())
    rules = TokenRules(issuer=ISSUER, audiences=(AUDIENCE,), leeway_seconds=leeway)
    return auth.Authorizer(rules, keys)


def counting_validations(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = auth.validate

    def counted(token, *args):
        calls.append(token)
        return real(token, *args)

    monkeypatch.setattr(auth, "validate", counted)
    return calls


def test_repeats_of_a_passed_token_are_not_verified_again(issuer_keys, monkeypatch):
    calls = counting_validations(monkeypatch)
    authorizer = authorizer_for(issuer_keys)
    token, other = issuer_keys.token(), issuer_keys.token(sub="user-7")

    async def scenario():
        return [await authorizer.authorize(f"Bearer {t}") for t in (token, token, other, token)]

    principals = asyncio.run(scenario())
    assert [p.subject for p in principals] == ["user-42", "user-42", "user-7", "user-42"]
    assert calls == [token, other]


def test_a_remembered_token_still_expires(issuer_keys):
    authorizer = authorizer_for(issuer_keys, leeway=0)
    token = issuer_keys.token(exp=int(time.time()) + 1)

    async def scenario():
        await authorizer.authorize(f"Bearer {token}")
        await asyncio.sleep(1.6)
        await authorizer.authorize(f"Bearer {token}")

    with pytest.raises(Refusal) as refused:
        asyncio.run(scenario())
    assert (refused.value.status, refused.value.description) == (401, "token expired")


def test_a_key_set_without_its_key_stops_a_remembered_token():
    issuer = Keys()  # its own: the key set changes
    authorizer = authorizer_for(issuer)
    token = issuer.token()

    async def scenario():
        await authorizer.authorize(f"Bearer {token}")
        issuer.keys[:] = [SigningKey("key-2")]  # the issuer dropped key-1
        await authorizer.keys.refresh()
        await authorizer.authorize(f"Bearer {token}")

    with pytest.raises(Refusal) as refused:
        asyncio.run(scenario())
    assert refused.value.status == 401
    assert "no signing key with kid 'key-1'" in refused.value.description


def test_the_memory_is_bounded(issuer_keys):
    authorizer = authorizer_for(issuer_keys)
    authorizer.remember = 3

    async def scenario():
        for n in range(10):
            await authorizer.authorize(f"Bearer {issuer_keys.token(sub=f'user-{n}')}")

    asyncio.run(scenario())
    assert len(authorizer._passed) == 3
