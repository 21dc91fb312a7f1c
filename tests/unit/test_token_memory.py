"""A token that passed is remembered: its repeats skip the RSA verification, yet it stops at
its expiry, and a key set without its key stops it at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from auth_proxy import auth
from auth_proxy.answers import Refusal
from auth_proxy.jwks import KeyCache
from auth_proxy.settings import TokenRules
from support.issuer import AUDIENCE, Issuer, SigningKey


@pytest.fixture
def issuer():
    issuer = Issuer()
    yield issuer
    issuer.down()


def authorizer_for(issuer: Issuer, leeway: float = 0.0) -> auth.Authorizer:
    async def fetch() -> dict:
        return {"keys": [key.public_jwk for key in issuer.keys]}

    keys = KeyCache(fetch, source="test", ttl_seconds=600, min_refresh_seconds=0)
    asyncio.run(keys.refresh())
    rules = TokenRules(issuer=issuer.url, audiences=(AUDIENCE,), leeway_seconds=leeway)
    return auth.Authorizer(rules, keys)


def counting_validations(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = auth.validate

    def counted(token, *args):
        calls.append(token)
        return real(token, *args)

    monkeypatch.setattr(auth, "validate", counted)
    return calls


def test_repeats_of_a_passed_token_are_not_verified_again(issuer, monkeypatch):
    calls = counting_validations(monkeypatch)
    authorizer = authorizer_for(issuer)
    token, other = issuer.token(), issuer.token(sub="user-7")

    async def scenario():
        return [await authorizer.authorize(f"Bearer {t}") for t in (token, token, other, token)]

    principals = asyncio.run(scenario())
    assert [p.subject for p in principals] == ["user-42", "user-42", "user-7", "user-42"]
    assert calls == [token, other]


def test_a_remembered_token_still_expires(issuer, monkeypatch):
    authorizer = authorizer_for(issuer, leeway=0)
    token = issuer.token(exp=int(time.time()) + 1)

    async def scenario():
        await authorizer.authorize(f"Bearer {token}")
        await asyncio.sleep(1.6)
        await authorizer.authorize(f"Bearer {token}")

    with pytest.raises(Refusal) as refused:
        asyncio.run(scenario())
    assert (refused.value.status, refused.value.description) == (401, "token expired")


def test_a_key_set_without_its_key_stops_a_remembered_token(issuer):
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


def test_the_memory_is_bounded(issuer):
    authorizer = authorizer_for(issuer)
    authorizer.remember = 3

    async def scenario():
        for n in range(10):
            await authorizer.authorize(f"Bearer {issuer.token(sub=f'user-{n}')}")

    asyncio.run(scenario())
    assert len(authorizer._passed) == 3
