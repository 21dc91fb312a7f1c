"""Turn an `Authorization` header into a principal, or a `Refusal` saying why not.

The shell around `tokens.validate`: reads the header, supplies the current keys and time, and
refetches the key set once when a token names a key we lack (key rotation).
"""

from __future__ import annotations

import time

from . import answers
from .jwks import KeyCache
from .settings import TokenRules
from .tokens import InsufficientScope, Principal, TokenRejected, UnknownKey, validate


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1)."""
    if not authorization:
        raise answers.no_token()
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        # RFC 6750 §3.1: a request with no bearer credentials gets the bare challenge.
        raise answers.no_token(f"unsupported authorization scheme {scheme[:20]!r}: use Bearer")
    token = token.strip()
    if not token:
        raise answers.invalid_token("empty bearer token")
    return token


class Authorizer:
    def __init__(self, rules: TokenRules, keys: KeyCache):
        self.rules = rules
        self.keys = keys

    async def authorize(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if not self.keys.ready:
            raise answers.keys_unavailable(self.keys.problem or "no signing keys")
        try:
            try:
                return validate(token, self.keys.keys, self.rules, time.time())
            except UnknownKey:
                if not await self.keys.refresh_for_unknown_kid():
                    raise
                return validate(token, self.keys.keys, self.rules, time.time())
        except InsufficientScope as exc:
            raise answers.insufficient_scope(exc.description, self.rules.scope) from None
        except TokenRejected as exc:
            raise answers.invalid_token(exc.description) from None
