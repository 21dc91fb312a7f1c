"""Request bodies as the routes read them: under a size limit, and decoded from gzip or deflate.

Both are ASGI middleware, so every route (ours, KServe's V1 and V2, the course's `/upload`) gets
the same rules. A refusal raised while a route reads its body (`TooLarge`, `BadRequest`) reaches
the app's error answers like any other bad input: a 4xx with `{"error": ...}`.

A compressed body is limited twice: on the wire by `BodyLimit`, decoded by `DecodedBody` (to the
same limit, and to `MAX_INFLATION` times what arrived), so a small gzip that inflates a
thousandfold (a "bomb") is a 413 after little more than a MiB is inflated.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import memory
from ..errors import BadRequest, OverBudget, TooLarge, UnsupportedEncoding

logger = logging.getLogger(__name__)

# Content codings this server decodes, and zlib's window bits for each. HTTP's "deflate" is the
# zlib format (RFC 9110 8.4.1.2), which is what tritonclient and browsers send.
CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPTED = "gzip, deflate"
# Real bodies shrink 1-5x under gzip (base64 images, pixel JSON); a bomb, a thousandfold. A body
# may inflate to this many times its compressed size (plus a first MiB), so memory spent per
# request stays proportional to what the client sent, far below the body limit for a bomb.
MAX_INFLATION = 32
INFLATION_ALLOWANCE = 1 << 20


class BodyRefused(HTTPException):
    """A body refused while a route reads it. An HTTPException because FastAPI turns any other
    exception raised while it parses a form (`/upload`) into a bare "error parsing the body";
    the app's answer for it is the usual `{"error": ...}` with this status."""


def refused(problem: BadRequest) -> BodyRefused:
    """For a refusal raised while a route reads the body."""
    logger.warning("refused request: %s", problem)
    return BodyRefused(int(problem.http_status), str(problem), headers=problem.headers or None)


async def refuse_now(problem: BadRequest, scope: Scope, receive: Receive, send: Send, **headers):
    """For a refusal before the route runs: the answer sent from the middleware."""
    logger.warning("refused request: %s", problem)
    answer = JSONResponse({"error": str(problem)}, int(problem.http_status), headers=headers)
    await answer(scope, receive, send)


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413 before reading them,
    and hold each body's bytes in the memory budget while its request runs (429 when they do
    not fit).

    A declared Content-Length is checked and taken at once; a chunked body is counted and taken
    as it arrives, and the handler reading it gets the 413 or 429 (`BodyRefused`).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, budget: memory.MemoryBudget):
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > self.max_bytes:
            problem = TooLarge(
                f"request body of {size} bytes is over the limit of {self.max_bytes}"
            )
            await refuse_now(problem, scope, receive, send)
            return
        try:
            held = [self.budget.take(size or 0)]
        except OverBudget as problem:
            await refuse_now(problem, scope, receive, send, **problem.headers)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            piece = len(message.get("body", b""))
            received += piece
            if received > self.max_bytes:
                raise refused(TooLarge(f"request body is over the limit of {self.max_bytes} bytes"))
            if size is None and piece:
                try:
                    held.append(self.budget.take(piece))
                except OverBudget as problem:
                    raise refused(problem) from None
            return message

        try:
            await self.app(scope, counting_receive, send)
        finally:
            for taken in held:
                taken.release()


class DecodedBody:
    """ASGI middleware: decode a request body sent with `Content-Encoding: gzip` or `deflate`.

    The route sees the decoded bytes, without the Content-Encoding and Content-Length headers
    (neither describes them any more). Decoding stops as soon as more than `max_bytes` came out.
    Any other coding is a 415 naming the accepted ones (RFC 9110 15.5.16).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, budget: memory.MemoryBudget):
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope["headers"] if k == b"content-encoding"]
        codings = [
            c.strip().lower()
            for c in b",".join(declared).decode("latin-1").split(",")
            if c.strip() and c.strip().lower() != "identity"
        ]
        if not codings or not _has_body(scope["headers"]):
            await self.app(scope, receive, send)
            return
        if len(codings) > 1 or codings[0] not in CODINGS:
            problem = UnsupportedEncoding(
                f"request bodies are decoded from {ACCEPTED} only, not {', '.join(codings)[:80]!r}"
            )
            await refuse_now(problem, scope, receive, send, **{"Accept-Encoding": ACCEPTED})
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in DESCRIBE_THE_WIRE]
        decoding = _Decoding(codings[0], self.max_bytes)
        loop = asyncio.get_running_loop()
        held: list[memory.Taken] = []

        async def decoding_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                # One chunk can inflate a thousandfold: off the event loop, like JSON parsing.
                try:
                    body = await loop.run_in_executor(None, decoding.feed, message.get("body", b""))
                    if not message.get("more_body", False):
                        decoding.finish()
                    held.append(self.budget.take(len(body)))  # the decoded bytes, held too
                except BadRequest as problem:
                    raise refused(problem) from None
                message = {**message, "body": body}
            return message

        try:
            await self.app({**scope, "headers": headers}, decoding_receive, send)
        finally:
            for taken in held:
                taken.release()


DESCRIBE_THE_WIRE = (b"content-encoding", b"content-length")


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """A stray Content-Encoding on a request without a body (a probe, a GET) changes nothing."""
    named = dict(headers)
    return b"transfer-encoding" in named or named.get(b"content-length", b"0").strip() != b"0"


class _Decoding:
    """One body's decoder: bounded output, and a clear refusal for anything not well-formed."""

    def __init__(self, coding: str, max_bytes: int):
        self.coding = coding
        self.max_bytes = max_bytes
        self.decoded = 0
        self.received = 0
        self._zlib = zlib.decompressobj(CODINGS[coding])

    def feed(self, data: bytes) -> bytes:
        if self._zlib.eof:
            if data:
                raise BadRequest(f"bytes after the end of the {self.coding} body")
            return b""
        self.received += len(data)
        limit = min(self.max_bytes, INFLATION_ALLOWANCE + MAX_INFLATION * self.received)
        room = limit - self.decoded
        try:
            out = self._zlib.decompress(data, room + 1)  # at most one byte over the limit
        except zlib.error:
            raise BadRequest(f"the body is not valid {self.coding} data") from None
        self.decoded += len(out)
        if self.decoded > self.max_bytes:
            raise TooLarge(
                f"request body is over the limit of {self.max_bytes} bytes once decoded "
                f"from {self.coding}"
            )
        if self.decoded > limit:
            raise TooLarge(
                f"the {self.coding} body inflates more than {MAX_INFLATION} times its size "
                "(a compression bomb?)"
            )
        if self._zlib.unused_data:
            raise BadRequest(f"bytes after the end of the {self.coding} body")
        return out

    def finish(self) -> None:
        if not self._zlib.eof:
            raise BadRequest(f"the {self.coding} body ends before its data does")
