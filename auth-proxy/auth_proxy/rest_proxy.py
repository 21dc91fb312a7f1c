"""The proxy's REST port: check the token (probes excepted), then stream the request to the
predictor and its answer back.

Bodies are streamed both ways, never buffered whole. Hop-by-hop headers are dropped; identity
and address headers follow `forwarded_headers` (the same rule as on the gRPC port); the token
itself is not passed on, so it cannot reach the predictor's logs.

The token is checked before anything else of the request is read: an `Expect: 100-continue` gets
its `100 Continue` only once the token has passed, and a refused request's body is never
forwarded (what arrives within `app.LINGER_SECONDS` is dropped, then the connection closes). A
client has `CLIENT_BODY_TIMEOUT_SECONDS` for each piece of its body (408 after that), and
aiohttp closes a connection whose request head has not arrived within
`CLIENT_IDLE_TIMEOUT_SECONDS` of its opening or of the last answer.

With the payload log on, an admitted inference's body and its 200 answer are copied by
reference as they pass (`BodyCopy`), never waited for: payload_log.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from . import forwarded_headers, refusals
from .auth import Authorizer, one_credential
from .budget import ByteBudget, Hold
from .logsafe import REFUSAL_LINES
from .metrics import IN_FLIGHT, REFUSALS, UPSTREAM_ERRORS, observe
from .payload_events import ID_HEADER, event_id, logged_rest
from .payload_log import PayloadLog
from .payload_queue import BodyCopy
from .public_paths import CLOSED_PREFIXES, DOCS_PATHS
from .refusals import Refusal
from .route_labels import rest_route
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
        "expect",
    }
)
QUERY_TOKEN_PARAMETERS = ("access_token", "token", "id_token")
CHUNK = 64 * 1024
# Bodies of declared length up to this are passed on in one piece rather than chunk by chunk:
# an image request (tens of KB) then costs one read and one write instead of a generator
# round per chunk. Larger or unsized bodies still stream, so memory stays bounded per request.
IN_ONE_PIECE = 1024 * 1024
ADMITTED = "auth_proxy.admitted"
STARTED = "auth_proxy.started"
OBSERVED = "auth_proxy.observed"
# nginx's convention for a request whose client went away before its answer was written.
CLIENT_CLOSED = 499


class BodyTooLarge(Exception):
    pass


def forwardable(headers) -> CIMultiDict:
    """Headers minus hop-by-hop ones (and those the Connection header names)."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    drop = HOP_BY_HOP | named
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def has_dot_segments(path: str) -> bool:
    """`.` or `..` as a segment of the decoded path (`%2e%2e` included): the upstream client
    would resolve them, so the path checked here would not be the path the predictor sees.
    No client of this API sends them (browsers and HTTP libraries resolve them first)."""
    return any(part in (".", "..") for part in path.split("/"))


def closed_because(path: str) -> str | None:
    """Why a decoded path (without dot segments) is not served, if it falls under a closed
    prefix, however its slashes are written."""
    normal = "/" + "/".join(part for part in path.split("/") if part)
    for prefix, reason in CLOSED_PREFIXES.items():
        if normal == prefix or normal.startswith(prefix + "/"):
            return reason
    return None


class RestProxy:
    def __init__(
        self,
        settings: Settings,
        authorizer: Authorizer,
        session: aiohttp.ClientSession,
        budget: ByteBudget,
        payload_log: PayloadLog | None = None,
    ):
        self.settings = settings
        self.authorizer = authorizer
        self.session = session
        self.budget = budget
        self.payload_log = payload_log
        self.lines = REFUSAL_LINES

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_route("*", r"/{path:[\s\S]*}", self.handle, expect_handler=self.expect)
        return app

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """`Expect: 100-continue`: the token first, then the go-ahead (RFC 9110 §10.1.1 lets a
        server answer with the final status instead)."""
        request[STARTED] = time.perf_counter()
        if request.headers.get("Expect", "").lower() != "100-continue":
            return self._refuse(request, Refusal(417, "expectation_failed", "unknown Expect"))
        try:
            request[ADMITTED] = await self._admit(request)
            # Whether the body would fit now: it is taken in `handle`, which always gives it
            # back (aiohttp may not call `handle` after this one, if the client leaves).
            self._take(request).release()
        except Refusal as refusal:
            return self._refuse(request, refusal)
        if request.version >= aiohttp.HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request.setdefault(STARTED, time.perf_counter())
        with IN_FLIGHT.labels("rest").track_inprogress():
            try:
                headers = request.get(ADMITTED) or await self._admit(request)
                with self._take(request):
                    return await self._forward(request, headers)
            except Refusal as refusal:
                return self._refuse(request, refusal)
            finally:
                if not request.get(OBSERVED):  # the client left, or its connection broke
                    self._observe(request, CLIENT_CLOSED)

    def _take(self, request: web.Request) -> Hold:
        """The body's bytes taken from the pod's memory budget until the answer is sent: its
        declared length, or the largest body when it comes without one (chunked)."""
        size = 0
        if request.body_exists:
            size = request.content_length or self.settings.max_body_bytes
        hold = self.budget.try_take(size)
        if hold is None:
            raise refusals.over_budget(
                f"the server is at its memory budget ({self.budget.capacity} bytes of requests "
                "in flight): try again shortly"
            )
        return hold

    @staticmethod
    def _observe(request: web.Request, status: int) -> None:
        request[OBSERVED] = True
        labels = rest_route(request.path)
        observe("rest", labels.protocol, labels.route, str(status), request[STARTED])

    def _refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        self._observe(request, refusal.status)
        REFUSALS.labels("rest", refusals.reason(refusal)).inc()
        self.lines.log(
            logging.INFO,
            "refused %s %s: %s %s (from %s)",
            request.method,
            request.path[:200],
            refusal.status,
            refusal,
            request.remote,
        )
        response = refusals.rest_response(refusal, self.settings.realm)
        if request.body_exists and not request.content.at_eof():
            # What is left of the body is not forwarded: aiohttp drops what arrives within
            # LINGER_SECONDS (so the client can read this answer), then the connection ends.
            response.force_close()
        return response

    async def _admit(self, request: web.Request) -> CIMultiDict:
        """The headers to send upstream, once the request may pass. Reads no body."""
        if has_dot_segments(request.path):
            raise refusals.invalid_request("dot segments (. or ..) in the path are refused")
        if any(name in request.query for name in QUERY_TOKEN_PARAMETERS):
            raise refusals.invalid_request(
                "tokens in the query string are refused: send Authorization: Bearer <token>"
            )
        if (
            request.content_length is not None
            and request.content_length > self.settings.max_body_bytes
        ):
            raise refusals.too_large(
                f"request body of {request.content_length} bytes is over the limit of "
                f"{self.settings.max_body_bytes}"
            )
        pairs = forwardable(request.headers).items()
        trusted = self.settings.trusted_proxies
        if self._public(request):
            closed = closed_because(request.path)  # whatever PUBLIC_PATHS says
            if closed:
                raise refusals.not_found(closed)
            if request.body_exists:
                raise refusals.invalid_request("a request without a token carries no body")
            return CIMultiDict(forwarded_headers.upstream_headers(pairs, request.remote, trusted))
        credential = one_credential(request.headers.getall("Authorization", []))
        principal = await self.authorizer.authorize(credential)
        closed = closed_because(request.path)
        if closed:
            raise refusals.not_found(f"no such route: {closed}")
        passed = forwarded_headers.upstream_headers(pairs, request.remote, trusted)
        return CIMultiDict(passed + forwarded_headers.identity_headers(principal))

    def _public(self, request: web.Request) -> bool:
        """A probe (`GET` of PUBLIC_PATHS), or with PUBLIC_DOCS a documentation page or asset
        (`GET` / `HEAD`): exact decoded paths only, so `/docs/`, `//docs` or `/docs/x` still
        need a token, and so does every operation the pages call."""
        path, method = request.path, request.method
        if method == "GET" and path in self.settings.public_paths:
            return True
        return self.settings.public_docs and method in ("GET", "HEAD") and path in DOCS_PATHS

    async def _forward(self, request: web.Request, headers: CIMultiDict) -> web.StreamResponse:
        log = self.payload_log
        if log is None or not logged_rest(request.method, request.path):
            return await self._pass(request, headers, None, None)
        call = event_id(request.headers.get(ID_HEADER))
        with contextlib.ExitStack() as copies:
            copy = log.rest_request(call, request.headers.get("Content-Type"))
            if copy is not None:
                copies.enter_context(copy)

            def answer_copy(upstream: aiohttp.ClientResponse) -> BodyCopy | None:
                if upstream.status != 200:  # KServe logs only what answered 200
                    return None
                made = log.rest_response(call, upstream.headers.get("Content-Type"))
                return None if made is None else copies.enter_context(made)

            return await self._pass(request, headers, copy, answer_copy)

    async def _pass(
        self,
        request: web.Request,
        headers: CIMultiDict,
        copy: BodyCopy | None,
        answer_copy: Callable[[aiohttp.ClientResponse], BodyCopy | None] | None,
    ) -> web.StreamResponse:
        """Forward the request and stream its answer back; `copy` and `answer_copy` (with the
        payload log on): the copies of the body and of the answer."""
        url = self.settings.upstream_http + request.rel_url.raw_path_qs
        patience = self.settings.client_body_timeout_seconds
        body = LimitedBody(request.content, self.settings.max_body_bytes, patience, copy)
        data: bytes | AsyncIterator[bytes] | None
        if not request.body_exists:
            data = None
            if copy is not None:
                copy.finish()
        elif request.content_length is not None and request.content_length <= IN_ONE_PIECE:
            data = await body.whole()  # the length was checked against the limit in _admit
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
            body.raise_its_fault()
            if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
                UPSTREAM_ERRORS.labels("rest", "timeout").inc()
                raise refusals.gateway_error(504, "the predictor did not answer in time") from None
            UPSTREAM_ERRORS.labels("rest", "unreachable").inc()
            logger.warning("the predictor is unreachable: %s", exc)
            raise refusals.gateway_error(502, "the predictor is unreachable") from None
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.update(forwardable(upstream.headers))
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            answer = answer_copy(upstream) if answer_copy is not None else None
            await self._relay(request, upstream, response, answer)
            await response.write_eof()
        self._observe(request, upstream.status)
        return response

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        response: web.StreamResponse,
        answer: BodyCopy | None,
    ) -> None:
        """Copy the predictor's answer to the client, telling whose side broke: an answer
        that breaks off upstream is the predictor's failure (counted as one); a client that
        leaves while it is written is the client's (recorded as 499 by `handle`). `answer`: the
        payload log's copy, finished once the whole answer has passed."""
        if upstream.content_length is not None and upstream.content_length <= IN_ONE_PIECE:
            pieces: AsyncIterator[bytes] = _one_piece(upstream)
        else:
            pieces = upstream.content.iter_chunked(CHUNK)
        while True:
            try:
                piece = await anext(pieces, None)
            except (TimeoutError, aiohttp.ClientError) as exc:
                UPSTREAM_ERRORS.labels("rest", "broken_answer").inc()
                self._observe(request, upstream.status)
                logger.warning("upstream answer broke off: %s", exc)
                raise  # the client sees a truncated answer, as it would from the predictor
            if piece is None:
                if answer is not None:
                    answer.finish()
                return
            if answer is not None:
                answer.add(piece)
            await response.write(piece)  # a client gone raises ConnectionResetError: 499


async def _one_piece(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    yield await upstream.read()


class LimitedBody:
    """A request body read from the client with a deadline per piece, and stopped past
    `limit` bytes: in one piece, or streamed upstream chunk by chunk.

    aiohttp wraps an exception raised inside a body generator in its own client errors, so
    what went wrong on the client's side is recorded here, for the caller to tell it from an
    upstream failure (`raise_its_fault`)."""

    def __init__(
        self,
        stream: aiohttp.StreamReader,
        limit: int,
        patience: float,
        copy: BodyCopy | None = None,
    ):
        self.stream = stream
        self.limit = limit
        self.patience = patience
        self.copy = copy  # the payload log's, finished once the body has been read whole
        self.fault: Refusal | None = None

    async def whole(self) -> bytes:
        try:
            async with asyncio.timeout(self.patience):
                body = await self.stream.read()
        except Exception as exc:
            raise self._record(exc) from None
        if self.copy is not None:
            self.copy.add(body)
            self.copy.finish()
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            try:
                async with asyncio.timeout(self.patience):
                    chunk = await self.stream.read(CHUNK)
            except Exception as exc:
                self._record(exc)
                raise
            if not chunk:
                if self.copy is not None:
                    self.copy.finish()
                return
            sent += len(chunk)
            if sent > self.limit:
                self.fault = refusals.too_large(
                    f"request body is over the limit of {self.limit} bytes"
                )
                raise BodyTooLarge
            if self.copy is not None:
                self.copy.add(chunk)
            yield chunk

    def _record(self, exc: Exception) -> Refusal:
        if isinstance(exc, TimeoutError):
            self.fault = refusals.request_timeout(
                f"the request body stalled for more than {self.patience:g} s"
            )
        else:  # the client closed the connection, or broke the body's framing
            self.fault = Refusal(400, "incomplete_body", "the request body broke off")
        return self.fault

    def raise_its_fault(self) -> None:
        if self.fault is not None:
            raise self.fault
