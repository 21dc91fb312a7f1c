"""Bearer-token validation: a pure function of (token, keys, rules, now), no I/O.

PyJWT checks the signature; the time claims are checked here against the `now` given, so the
function is deterministic and testable. Each failure names the check that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from .settings import FORBIDDEN_ALGORITHMS, TokenRules


class TokenRejected(Exception):
    """The token is not acceptable: 401, `error="invalid_token"`."""

    error = "invalid_token"

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


class InsufficientScope(TokenRejected):
    """A valid token without the required scope: 403, `error="insufficient_scope"`."""

    error = "insufficient_scope"


class UnknownKey(TokenRejected):
    """No key with the token's `kid`: the caller may refetch the key set and try again."""

    def __init__(self, kid: str | None):
        super().__init__(f"no signing key with kid {kid!r} in the issuer's key set")
        self.kid = kid


@dataclass(frozen=True)
class SigningKey:
    """A public key from the issuer's key set, and the algorithm its JWK declares, if any."""

    key: object
    algorithm: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who the token speaks for, as forwarded to the predictor."""

    subject: str
    scopes: tuple[str, ...]
    expires_at: float = 0.0  # the token's exp: until then (plus leeway) it stays valid


def validate(
    token: str, keys: Mapping[str, SigningKey], rules: TokenRules, now: float
) -> Principal:
    """The principal a token proves, or `TokenRejected` naming the failed check."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed token: not a signed JWT") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise TokenRejected("unsigned token (alg none) refused")
    if algorithm in FORBIDDEN_ALGORITHMS or algorithm not in rules.algorithms:
        allowed = ", ".join(rules.algorithms)
        raise TokenRejected(f"algorithm {algorithm} is not allowed (allowed: {allowed})")
    key = _key_for(header.get("kid"), algorithm, keys)
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            options={
                "verify_signature": True,
                "verify_exp": False,  # time claims: checked below against `now`
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,  # audience and issuer: checked below, with clearer words
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenRejected("signature verification failed") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"token cannot be verified: {exc}") from None
    _check_times(claims, now, rules.leeway_seconds)
    _check_issuer_and_audience(claims, rules)
    scopes = granted_scopes(claims)
    if rules.scope not in scopes:
        raise InsufficientScope(f"the token lacks the scope {rules.scope}")
    subject = claims.get("sub")
    return Principal(
        subject=subject if isinstance(subject, str) else "",
        scopes=scopes,
        expires_at=float(claims["exp"]),
    )


def _key_for(kid: object, algorithm: str, keys: Mapping[str, SigningKey]):
    if kid is None and len(keys) == 1:  # a key set of one key needs no kid
        signing_key = next(iter(keys.values()))
    elif isinstance(kid, str) and kid in keys:
        signing_key = keys[kid]
    else:
        raise UnknownKey(kid if isinstance(kid, str) else None)
    if signing_key.algorithm and signing_key.algorithm != algorithm:
        raise TokenRejected(
            f"key {kid!r} is for {signing_key.algorithm}, the token says {algorithm}"
        )
    return signing_key.key


def _check_times(claims: dict, now: float, leeway: float) -> None:
    exp = claims.get("exp")
    if exp is None:
        raise TokenRejected("the token has no exp (expiry) claim")
    if not isinstance(exp, int | float):
        raise TokenRejected("the exp claim is not a number")
    if now > exp + leeway:
        raise TokenRejected("token expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now + leeway < nbf:
        raise TokenRejected("token not yet valid (nbf is in the future)")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and now + leeway < iat:
        raise TokenRejected("token issued in the future (iat)")


def _check_issuer_and_audience(claims: dict, rules: TokenRules) -> None:
    if claims.get("iss") != rules.issuer:
        raise TokenRejected(f"wrong issuer: expected {rules.issuer}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not set(audiences) & set(rules.audiences):
        raise TokenRejected(f"wrong audience: expected {' or '.join(rules.audiences)}")


def granted_scopes(claims: dict) -> tuple[str, ...]:
    """Scopes from `scope` (space-separated, OAuth2), `scp` (string or list, Azure AD / Okta)
    and `permissions` (list, Auth0 RBAC), in that order, without duplicates."""
    found: list[str] = []
    for claim in ("scope", "scp", "permissions"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.extend(value.split())
        elif isinstance(value, list):
            found.extend(item for item in value if isinstance(item, str))
    return tuple(dict.fromkeys(found))
