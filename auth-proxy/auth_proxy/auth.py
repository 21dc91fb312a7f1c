"""Turn an `Authorization` header into a principal, or a `Refusal` saying why not.

The shell around `tokens.validate`: reads the header, supplies the current keys and time, and
refetches the key set once when a token names a key we lack (key rotation).

A client sends the same token with every request until it expires, so tokens that passed are
remembered (as Envoy's jwt_authn does): a repeat costs a dictionary lookup and an expiry check
instead of an RSA verification. An entry holds only for the key set that verified it (a key
removed from the issuer's set stops its tokens at once) and only until the token's exp; the
other checks cannot change with time (nbf and iat only become more valid).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from . import refusals
from .jwks import KeyCache
from .settings import TokenRules
from .tokens import InsufficientScope, Principal, TokenRejected, UnknownKey, shown, validate


def one_credential(values: list[str]) -> str | None:
    """The request's only `Authorization` value; two are refused (RFC 6750 §2: one method)."""
    if len(values) > 1:
        raise refusals.invalid_request("more than one Authorization header: send exactly one")
    return values[0] if values else None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1)."""
    if not authorization:
        raise refusals.no_token()
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        # RFC 6750 §3.1: a request with no bearer credentials gets the bare challenge.
        raise refusals.no_token(f"unsupported authorization scheme {shown(scheme, 20)}: use Bearer")
    token = token.strip()
    if not token:
        raise refusals.invalid_token("empty bearer token")
    return token


class Authorizer:
    def __init__(self, rules: TokenRules, keys: KeyCache, remember: int = 1024):
        self.rules = rules
        self.keys = keys
        self.remember = remember
        self._passed: OrderedDict[str, tuple[object, Principal]] = OrderedDict()

    async def authorize(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if not self.keys.ready:
            # Why (URLs, kids, the issuer's answer) is for /readyz and the log, not for callers.
            raise refusals.keys_unavailable(
                "the proxy holds no signing key to check tokens with yet; try again shortly"
            )
        passed = self._passed.get(token)
        if passed is not None:
            key_set, principal = passed
            if (
                key_set is self.keys.keys
                and time.time() <= principal.expires_at + self.rules.leeway_seconds
            ):
                self._passed.move_to_end(token)
                return principal
            del self._passed[token]
        principal = await self._validate(token)
        self._passed[token] = (self.keys.keys, principal)
        if len(self._passed) > self.remember:
            self._passed.popitem(last=False)
        return principal

    async def _validate(self, token: str) -> Principal:
        try:
            try:
                return validate(token, self.keys.keys, self.rules, time.time())
            except UnknownKey:
                if not await self.keys.refresh_for_unknown_kid():
                    raise
                return validate(token, self.keys.keys, self.rules, time.time())
        except InsufficientScope as exc:
            raise refusals.insufficient_scope(exc.description, self.rules.scope) from None
        except TokenRejected as exc:
            raise refusals.invalid_token(exc.description) from None
