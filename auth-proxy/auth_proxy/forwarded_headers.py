"""What the proxy sends upstream besides the message: one rule for REST headers and gRPC
metadata.

- Identity: every incoming `x-auth-*` and every `authorization*` (`authorization-bin`,
  `Authorization` itself) is dropped; the proxy alone sets `x-auth-subject` and
  `x-auth-scopes`, from the verified token.
- Addresses: a client cannot choose the address the predictor sees. `Forwarded` and
  `X-Real-IP` are dropped; `X-Forwarded-For` becomes the peer the proxy saw, appended to the
  incoming list only when that peer is a trusted proxy (`TRUSTED_PROXIES`, e.g. the OpenShift
  router's network); `X-Forwarded-Proto` / `-Host` / `-Port` are kept only from a trusted peer.
  The predictor's uvicorn trusts these headers from loopback only, that is, from this proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from .settings import Network
from .tokens import Principal

ALWAYS_DROPPED = frozenset({"forwarded", "x-real-ip"})
FROM_TRUSTED_ONLY = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"})
# What a percent-encoded `sub` keeps as is: printable ASCII but space, '%' and quotes.
_SUBJECT_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%\"'\\")


def is_identity(name: str) -> bool:
    """`x-auth-*` and `authorization*`, with `_` read as `-` (servers behind may map them)."""
    lowered = name.lower().replace("_", "-")
    return lowered.startswith(("x-auth-", "authorization"))


def is_trusted(peer: str | None, trusted: Iterable[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    return any(address in network for network in trusted)


def upstream_headers(
    pairs: Iterable[tuple[str, Any]], peer: str | None, trusted: Iterable[Network]
) -> list[tuple[str, Any]]:
    """The incoming headers (or metadata) minus identity and address claims, plus the
    `x-forwarded-for` the predictor may believe."""
    from_proxy = is_trusted(peer, trusted)
    kept: list[tuple[str, Any]] = []  # str values; bytes for gRPC's -bin metadata
    chain: list[str] = []
    for name, value in pairs:
        lowered = name.lower().replace("_", "-")
        if lowered == "x-forwarded-for":
            if from_proxy:
                chain.append(str(value))
        elif not (
            is_identity(lowered)
            or lowered in ALWAYS_DROPPED
            or (lowered in FROM_TRUSTED_ONLY and not from_proxy)
        ):
            kept.append((name, value))
    chain.append(peer or "unknown")
    kept.append(("x-forwarded-for", ", ".join(chain)))
    return kept


def identity_headers(principal: Principal) -> list[tuple[str, str]]:
    """The verified identity as header-safe values: `sub` percent-encoded (UTF-8, RFC 3986)
    where it is not printable ASCII, scopes space-separated (already scope-tokens)."""
    return [
        ("x-auth-subject", quote(principal.subject, safe=_SUBJECT_SAFE)),
        ("x-auth-scopes", " ".join(principal.scopes)),
    ]
