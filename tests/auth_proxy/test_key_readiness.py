"""Which keys can verify which algorithms (`tokens.can_verify`), and what makes the key cache
ready: a key for an allowed algorithm, not merely a key. In process, no issuer."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from auth_proxy.jwks import KeyCache
from auth_proxy.settings import SIGNATURE_ALGORITHMS
from auth_proxy.tokens import KEY_NEEDED, SigningKey, can_verify

pytestmark = pytest.mark.unit

RSA = rsa.generate_private_key(65537, 2048).public_key()
P256 = ec.generate_private_key(ec.SECP256R1()).public_key()
P384 = ec.generate_private_key(ec.SECP384R1()).public_key()
ED = ed25519.Ed25519PrivateKey.generate().public_key()


@pytest.mark.parametrize(
    ("key", "algorithm", "expected"),
    [
        (SigningKey(RSA), "RS256", True),
        (SigningKey(RSA), "PS512", True),
        (SigningKey(RSA), "ES256", False),
        (SigningKey(RSA, "RS256"), "PS256", False),  # the JWK declares its algorithm
        (SigningKey(P256), "ES256", True),
        (SigningKey(P256), "ES384", False),  # wrong curve
        (SigningKey(P384), "ES384", True),
        (SigningKey(P256), "RS256", False),
        (SigningKey(ED), "EdDSA", True),
        (SigningKey(ED), "ES256", False),
        (SigningKey(object()), "RS256", False),
        (SigningKey(RSA), "RS265", False),  # not an algorithm
        (SigningKey(RSA), "RSA-OAEP", False),  # an encryption algorithm
    ],
)
def test_can_verify(key, algorithm, expected):
    assert can_verify(key, algorithm) is expected


def cache(algorithms: tuple[str, ...], keys: dict) -> KeyCache:
    async def fetch() -> dict:
        return keys

    made = KeyCache(
        fetch, source="test", ttl_seconds=600, min_refresh_seconds=0, algorithms=algorithms
    )
    asyncio.run(made.refresh())
    return made


def ec_jwks() -> dict:
    from jwt.algorithms import ECAlgorithm

    return {"keys": [{**ECAlgorithm.to_jwk(P256, as_dict=True), "kid": "ec-1"}]}


def test_an_ec_only_key_set_is_not_ready_for_rs256_and_says_why():
    keys = cache(("RS256",), ec_jwks())
    assert keys.keys and not keys.ready
    assert "can verify the allowed algorithms (RS256" in (keys.problem or "")
    assert "ec-1" in (keys.problem or "")


def test_the_same_key_set_is_ready_for_es256():
    keys = cache(("RS256", "ES256"), ec_jwks())
    assert keys.ready and keys.problem is None


def test_nothing_fetched_yet_is_not_ready():
    async def never() -> dict:
        raise AssertionError("not called")

    keys = KeyCache(never, source="test", ttl_seconds=600, min_refresh_seconds=0)
    assert not keys.ready and "not been fetched yet" in (keys.problem or "")


def test_every_allowed_algorithm_names_the_key_it_needs():
    assert set(KEY_NEEDED) == SIGNATURE_ALGORITHMS


def test_a_key_set_without_an_allowed_key_does_not_replace_good_keys():
    from jwt.algorithms import RSAAlgorithm

    rsa_set = {"keys": [{**RSAAlgorithm.to_jwk(RSA, as_dict=True), "kid": "rsa-1"}]}
    answers = [rsa_set, ec_jwks()]

    async def fetch() -> dict:
        return answers.pop(0)

    keys = KeyCache(fetch, source="test", ttl_seconds=600, min_refresh_seconds=0)
    assert asyncio.run(keys.refresh()) and keys.ready
    assert not asyncio.run(keys.refresh())
    assert keys.ready and set(keys.keys) == {"rsa-1"}
    assert "no key for the allowed algorithms" in (keys.problem or "")


def test_whatever_an_issuer_sends_is_a_failed_fetch_not_a_dead_refresher():
    async def fetch() -> dict:
        return {"keys": [{"kty": "RSA", "alg": ["RS256"], "n": "x", "e": "AQAB"}]}

    keys = KeyCache(fetch, source="test", ttl_seconds=600, min_refresh_seconds=0)
    assert asyncio.run(keys.refresh()) is False
    assert not keys.ready and keys.problem
