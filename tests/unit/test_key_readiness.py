"""Which keys can verify which algorithms (`tokens.can_verify`), and what makes the key cache
ready: a key for an allowed algorithm, not merely a key. In process, no issuer."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from auth_proxy.jwks import KeyCache
from auth_proxy.tokens import SigningKey, can_verify

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
