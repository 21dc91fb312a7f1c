"""The one place that builds refusals: RFC 6750 for REST, the matching gRPC status."""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from aiohttp import web


@dataclass(frozen=True)
class Refusal(Exception):
    """Why a request is not forwarded. `error` is RFC 6750's code, None for a missing token."""

    status: int
    error: str | None
    description: str
    scope: str | None = None  # set on insufficient_scope: the scope that was needed

    def __str__(self) -> str:
        return self.description


def no_token(
    description: str = "a bearer token is required: Authorization: Bearer <token>",
) -> Refusal:
    return Refusal(401, None, description)


def invalid_request(description: str) -> Refusal:
    return Refusal(400, "invalid_request", description)


def invalid_token(description: str) -> Refusal:
    return Refusal(401, "invalid_token", description)


def insufficient_scope(description: str, scope: str) -> Refusal:
    return Refusal(403, "insufficient_scope", description, scope)


def keys_unavailable(description: str) -> Refusal:
    """No usable signing key is held: the fault is ours, not the token's (503, not 401)."""
    return Refusal(503, "temporarily_unavailable", description)


def gateway_error(status: int, description: str) -> Refusal:
    return Refusal(status, "bad_gateway" if status == 502 else "gateway_timeout", description)


def not_found(description: str) -> Refusal:
    return Refusal(404, "not_found", description)


def request_timeout(description: str) -> Refusal:
    return Refusal(408, "request_timeout", description)


def invalid_argument(description: str) -> Refusal:
    """A request the protocol does not allow (gRPC INVALID_ARGUMENT), before any token check."""
    return Refusal(400, "invalid_argument", description)


def too_large(description: str) -> Refusal:
    return Refusal(413, "request_too_large", description)


# How long a client refused for want of memory should wait before it tries again (seconds):
# requests in flight finish in well under that.
RETRY_AFTER_SECONDS = 1


def over_budget(description: str) -> Refusal:
    """The pod's memory budget is held by requests in flight: try again shortly (429)."""
    return Refusal(429, "over_budget", description)


def reason(refusal: Refusal) -> str:
    """The refusal's label in `auth_proxy_refusals_total`: a fixed, small set of values."""
    return refusal.error or "no_token"


# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E; anything else becomes '?'.
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _quoted(value: str, limit: int = 300) -> str:
    return '"' + _NOT_IN_DESCRIPTION.sub("?", value[:limit]) + '"'


def www_authenticate(refusal: Refusal, realm: str) -> str:
    parts = [f"realm={_quoted(realm)}"]
    if refusal.error in ("invalid_request", "invalid_token", "insufficient_scope"):
        parts.append(f"error={_quoted(refusal.error)}")
        parts.append(f"error_description={_quoted(refusal.description)}")
    if refusal.scope:
        parts.append(f"scope={_quoted(refusal.scope)}")
    return "Bearer " + ", ".join(parts)


def rest_response(refusal: Refusal, realm: str) -> web.Response:
    body: dict[str, str] = {"error": refusal.error or "unauthorized"}
    body["error_description"] = refusal.description
    if refusal.scope:
        body["scope"] = refusal.scope
    headers = {}
    if refusal.status in (400, 401, 403):
        headers["WWW-Authenticate"] = www_authenticate(refusal, realm)
    if refusal.status == 429:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return web.json_response(body, status=refusal.status, headers=headers)


GRPC_CODES = {
    400: grpc.StatusCode.UNAUTHENTICATED,  # invalid_request: a malformed credential
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    503: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def grpc_code(refusal: Refusal) -> grpc.StatusCode:
    if refusal.error == "invalid_argument":
        return grpc.StatusCode.INVALID_ARGUMENT
    return GRPC_CODES.get(refusal.status, grpc.StatusCode.UNKNOWN)
