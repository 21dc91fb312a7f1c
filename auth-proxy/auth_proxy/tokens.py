"""Bearer-token validation: a pure function of (token, keys, rules, now), no I/O.

PyJWT checks the signature; the time claims are checked here against the `now` given, so the
function is deterministic and testable. Each failure names the check that failed.

Everything in a token is attacker-written until its signature holds, and a signed claim is only
as tidy as the issuer made it: every claim is type-checked (a NumericDate is a finite number,
`aud` a string or a list of strings, scopes RFC 6749 scope-tokens) and every value quoted back
in a description goes through `shown`, escaped and shortened, so it cannot forge a log line or
break a header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .settings import FORBIDDEN_ALGORITHMS, TokenRules

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), tokens separated by one space.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# Past this NumericDate (year 10000) a date is a mistake or an attack, and float() may overflow.
LATEST_DATE = 253402300800


def shown(value: object, limit: int = 40, quote: bool = True) -> str:
    """A client-supplied value as it may appear in a description: printable ASCII, at most
    `limit` characters (then `...`), quoted like repr unless `quote` is false."""
    text = value if isinstance(value, str) else repr(value)
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", escaped)
    escaped = escaped[:limit] + "..." if len(escaped) > limit else escaped
    return "'" + escaped.replace("'", "\\'") + "'" if quote else escaped


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
        super().__init__(f"no signing key with kid {shown(kid)} in the issuer's key set")
        self.kid = kid


@dataclass(frozen=True)
class SigningKey:
    """A public key from the issuer's key set, and the algorithm its JWK declares, if any."""

    key: object
    algorithm: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who the token speaks for, as forwarded to the predictor."""

    # The `sub` claim as signed (any Unicode); `forwarded_headers` gives its header form.
    subject: str
    scopes: tuple[str, ...]  # scope-tokens only: printable ASCII, no spaces
    expires_at: float = 0.0  # the token's exp: until then (plus leeway) it stays valid


def validate(
    token: str, keys: Mapping[str, SigningKey], rules: TokenRules, now: float
) -> Principal:
    """The principal a token proves, or `TokenRejected` naming the failed check."""
    if not token.isascii():  # a JWS compact serialisation is base64url and dots only
        raise TokenRejected("malformed token: not a signed JWT")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed token: not a signed JWT") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise TokenRejected("the alg header is missing or not a string")
    if algorithm.lower() == "none":
        raise TokenRejected("unsigned token (alg none) refused")
    if algorithm in FORBIDDEN_ALGORITHMS or algorithm not in rules.algorithms:
        allowed = ", ".join(rules.algorithms)
        raise TokenRejected(
            f"algorithm {shown(algorithm, quote=False)} is not allowed (allowed: {allowed})"
        )
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
        raise TokenRejected(f"token cannot be verified: {shown(str(exc), 80)}") from None
    expires_at = _check_times(claims, now, rules.leeway_seconds)
    _check_issuer_and_audience(claims, rules)
    scopes = granted_scopes(claims)
    if rules.scope not in scopes:
        raise InsufficientScope(f"the token lacks the scope {rules.scope}")
    subject = claims.get("sub", "")
    if not isinstance(subject, str):
        raise TokenRejected("the sub claim is not a string")
    return Principal(subject=subject, scopes=scopes, expires_at=expires_at)


def _key_for(kid: object, algorithm: str, keys: Mapping[str, SigningKey]):
    if kid is None and len(keys) == 1:  # a key set of one key needs no kid
        signing_key = next(iter(keys.values()))
    elif isinstance(kid, str) and kid in keys:
        signing_key = keys[kid]
    else:
        raise UnknownKey(kid if isinstance(kid, str) else None)
    if signing_key.algorithm and signing_key.algorithm != algorithm:
        raise TokenRejected(
            f"key {shown(kid)} is for {signing_key.algorithm}, the token says {shown(algorithm)}"
        )
    return signing_key.key


# What each allowed signature algorithm needs (RFC 7518, RFC 8037): the key type, and the curve.
KEY_NEEDED: dict[str, tuple[str, str | None]] = {
    **{f"{family}{bits}": ("RSA", None) for family in ("RS", "PS") for bits in (256, 384, 512)},
    "ES256": ("EC", "secp256r1"),
    "ES256K": ("EC", "secp256k1"),
    "ES384": ("EC", "secp384r1"),
    "ES512": ("EC", "secp521r1"),
    "EdDSA": ("OKP", None),
}


def can_verify(signing_key: SigningKey, algorithm: str) -> bool:
    """Whether `signing_key` can check a signature made with `algorithm`: an RSA key for RS*/PS*,
    an EC key on the algorithm's curve for ES*, an Ed25519/Ed448 key for EdDSA; and the
    algorithm the JWK declares, if it declares one."""
    if signing_key.algorithm and signing_key.algorithm != algorithm:
        return False
    needed = KEY_NEEDED.get(algorithm)
    key = signing_key.key
    if needed is None:
        return False
    if isinstance(key, rsa.RSAPublicKey):
        return needed[0] == "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return needed == ("EC", key.curve.name)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return needed[0] == "OKP"
    return False


def numeric_date(claims: dict, name: str) -> float | None:
    """RFC 7519 §2 NumericDate: a finite JSON number (not a boolean, not a string), or None."""
    value = claims.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not -LATEST_DATE <= value <= LATEST_DATE  # NaN fails this too
    ):
        raise TokenRejected(f"the {name} claim is not a NumericDate (a finite number of seconds)")
    return float(value)


def _check_times(claims: dict, now: float, leeway: float) -> float:
    """The token's expiry, once exp, nbf and iat hold at `now`."""
    exp = numeric_date(claims, "exp")
    if exp is None:
        raise TokenRejected("the token has no exp (expiry) claim")
    if now > exp + leeway:
        raise TokenRejected("token expired")
    nbf = numeric_date(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise TokenRejected("token not yet valid (nbf is in the future)")
    iat = numeric_date(claims, "iat")
    if iat is not None and now + leeway < iat:
        raise TokenRejected("token issued in the future (iat)")
    return exp


def _check_issuer_and_audience(claims: dict, rules: TokenRules) -> None:
    if claims.get("iss") != rules.issuer:
        raise TokenRejected(f"wrong issuer: expected {rules.issuer}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if audience is not None and not (
        isinstance(audiences, list) and all(isinstance(item, str) for item in audiences)
    ):
        raise TokenRejected("the aud claim is not a string or a list of strings")
    if not audiences or not set(audiences) & set(rules.audiences):
        raise TokenRejected(f"wrong audience: expected {' or '.join(rules.audiences)}")


def _scope_list(claims: dict, claim: str, strings: bool) -> list[str]:
    """The scope-tokens of one claim: a space-separated string (if `strings`), or a list of
    scope-tokens. Any other shape, or a token with other characters, is refused by name."""
    value = claims.get(claim)
    if value is None:
        return []
    if strings and isinstance(value, str):
        items = [item for item in value.split(" ") if item]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        shape = "a string or a list of strings" if strings else "a list of strings"
        raise TokenRejected(f"the {claim} claim is not {shape}")
    if not all(SCOPE_TOKEN.fullmatch(item) for item in items):
        raise TokenRejected(f"the {claim} claim holds a malformed scope (RFC 6749, section 3.3)")
    return items


def granted_scopes(claims: dict) -> tuple[str, ...]:
    """Scopes from `scope` (space-separated string, OAuth2), `scp` (string or list, Azure AD /
    Okta) and `permissions` (list, Auth0 RBAC), in that order, without duplicates."""
    if "scope" in claims and not isinstance(claims["scope"], str | None):
        raise TokenRejected("the scope claim is not a string")
    found = [
        *_scope_list(claims, "scope", strings=True),
        *_scope_list(claims, "scp", strings=True),
        *_scope_list(claims, "permissions", strings=False),
    ]
    return tuple(dict.fromkeys(found))
