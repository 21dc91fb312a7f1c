"""The REST door: check the token (probes excepted), then stream the request to the predictor
and its answer back.

Bodies are streamed both ways, never buffered whole. Hop-by-hop headers are dropped; incoming
`X-Auth-*` headers are replaced by the verified `X-Auth-Subject` / `X-Auth-Scopes`; the token
itself is not passed on, so it cannot reach the predictor's logs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from . import answers
from .answers import Refusal
from .auth import Authorizer
from .metrics import REQUESTS
from .settings import Settings

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
QUERY_TOKEN_PARAMETERS = ("access_token", "token", "id_token")
CHUNK = 64 * 1024
# Bodies of declared length up to this are passed on in one piece rather than chunk by chunk:
# an image request (tens of KB) then costs one read and one write instead of a generator
# round per chunk. Larger or unsized bodies still stream, so memory stays bounded per request.
WHOLE = 1024 * 1024


class BodyTooLarge(Exception):
    pass


def forwardable(headers, extra_drop: frozenset[str] = frozenset()) -> CIMultiDict:
    """Headers minus hop-by-hop ones (and those the Connection header names)."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    drop = HOP_BY_HOP | named | extra_drop
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


class RestProxy:
    def __init__(self, settings: Settings, authorizer: Authorizer, session: aiohttp.ClientSession):
        self.settings = settings
        self.authorizer = authorizer
        self.session = session

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            headers = await self._admit(request)
            return await self._forward(request, headers)
        except Refusal as refusal:
            REQUESTS.labels("rest", str(refusal.status)).inc()
            logger.info(
                "refused %s %s: %s %s", request.method, request.path, refusal.status, refusal
            )
            return answers.rest_answer(refusal, self.settings.realm)

    async def _admit(self, request: web.Request) -> CIMultiDict:
        """The headers to send upstream, once the request may pass."""
        if any(name in request.query for name in QUERY_TOKEN_PARAMETERS):
            raise answers.invalid_request(
                "tokens in the query string are refused: send Authorization: Bearer <token>"
            )
        if (
            request.content_length is not None
            and request.content_length > self.settings.max_body_bytes
        ):
            raise Refusal(
                413,
                "request_too_large",
                f"request body of {request.content_length} bytes is over the limit of "
                f"{self.settings.max_body_bytes}",
            )
        headers = forwardable(request.headers, frozenset({"authorization"}))
        for name in [k for k in headers if k.lower().startswith("x-auth-")]:
            headers.popall(name)
        if request.method == "GET" and request.path in self.settings.public_paths:
            return headers
        principal = await self.authorizer.authorize(request.headers.get("Authorization"))
        headers["X-Auth-Subject"] = principal.subject
        headers["X-Auth-Scopes"] = " ".join(principal.scopes)
        return headers

    async def _forward(self, request: web.Request, headers: CIMultiDict) -> web.StreamResponse:
        url = self.settings.upstream_http + request.rel_url.raw_path_qs
        body = LimitedBody(request.content, self.settings.max_body_bytes)
        if not request.body_exists:
            data = None
        elif request.content_length is not None and request.content_length <= WHOLE:
            data = await request.read()  # the length was checked against the limit in _admit
        else:
            data = body.chunks()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_read=self.settings.upstream_timeout_seconds
        )
        try:
            upstream = await self.session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=False,
            )
        except (BodyTooLarge, TimeoutError, aiohttp.ClientError) as exc:
            if body.exceeded:
                raise Refusal(
                    413,
                    "request_too_large",
                    f"request body is over the limit of {self.settings.max_body_bytes} bytes",
                ) from None
            if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
                raise answers.gateway_error(504, "the predictor did not answer in time") from None
            raise answers.gateway_error(502, f"the predictor is unreachable: {exc}") from None
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.update(forwardable(upstream.headers))
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            try:
                if upstream.content_length is not None and upstream.content_length <= WHOLE:
                    await response.write(await upstream.read())
                else:
                    async for chunk in upstream.content.iter_chunked(CHUNK):
                        await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError) as exc:
                logger.warning("upstream answer broke off: %s", exc)
                raise  # the client sees a truncated answer, as it would from the predictor
            await response.write_eof()
        REQUESTS.labels("rest", str(upstream.status)).inc()
        return response


class LimitedBody:
    """A request body streamed upstream chunk by chunk, stopped past `limit` bytes.

    aiohttp wraps an exception raised inside a body generator in its own client errors, so the
    overflow is also recorded here, for the caller to tell it from an upstream failure."""

    def __init__(self, stream: aiohttp.StreamReader, limit: int):
        self.stream = stream
        self.limit = limit
        self.exceeded = False

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.stream.iter_chunked(CHUNK):
            sent += len(chunk)
            if sent > self.limit:
                self.exceeded = True
                raise BodyTooLarge
            yield chunk
