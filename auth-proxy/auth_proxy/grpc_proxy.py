"""The proxy's gRPC port: the inference methods of `inference.GRPCInferenceService`, forwarded
as raw bytes.

A generic handler with no (de)serialisers: messages pass through unparsed and unchanged. The
handler is a stream-unary one so that it runs before the request message is read: the token
(from the `authorization` metadata; the probes' methods pass without one) is decided on the
metadata alone, and an anonymous 60 MiB message is refused without being buffered. An admitted
call buffers at most `MAX_BODY_BYTES`. Only the V2 inference methods are served; the
model-repository extension (`Repository*`) and anything else answer UNIMPLEMENTED, as a server
without them does. The caller's deadline is passed on, capped at `UPSTREAM_TIMEOUT_SECONDS`,
and the predictor's status comes back as it was.

With the payload log on, an admitted `ModelInfer`'s message and its OK answer are handed to it
as they are (the same bytes objects, no copy), never waited for: payload_log.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import NoReturn

import grpc
from grpc import aio

from . import forwarded_headers, refusals
from .auth import Authorizer, one_credential
from .budget import (
    GRPC_COPIES,
    READ_PATIENCE_SECONDS,
    ByteBudget,
    Hold,
    largest_grpc_message,
)
from .logsafe import REFUSAL_LINES
from .metrics import IN_FLIGHT, REFUSALS, UPSTREAM_ERRORS, observe
from .payload_events import ID_HEADER, event_id, logged_grpc
from .payload_log import PayloadLog
from .refusals import Refusal
from .route_labels import GRPC_SERVICE, V2_INFERENCE_METHODS, grpc_route
from .settings import Settings
from .tokens import shown

logger = logging.getLogger(__name__)

# The predictor could not answer (as REST's 502 / 504), rather than answered with an error.
UPSTREAM_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
FORWARDED_METHODS = frozenset(GRPC_SERVICE + name for name in V2_INFERENCE_METHODS)


EMPTY_MESSAGE = b""  # the serialised ServerLiveRequest / ServerReadyRequest: no fields
# gRPC's wire rule for ASCII metadata values (the spec's ASCII-Value): printable ASCII.
_ASCII_VALUE = re.compile(r"[\x20-\x7e]*")


def checked_metadata(pairs) -> tuple[tuple[str, str | bytes], ...]:
    """The call's metadata, or a 400-class refusal naming the first key whose value is not
    printable ASCII (gRPC core hands such values over undecoded, and forwarding them fails):
    the caller gets INVALID_ARGUMENT at once, never a call that hangs."""
    checked = tuple(pairs)
    for key, value in checked:
        if key.endswith("-bin"):
            continue
        if not isinstance(value, str) or not _ASCII_VALUE.fullmatch(value):
            raise refusals.invalid_argument(
                f"metadata {shown(key, 40)}: the value is not printable ASCII"
            )
    return checked


def peer_address(peer: str | None) -> str | None:
    """The address in a gRPC peer string: `ipv4:10.0.0.1:5000`, `ipv6:[::1]:5000`."""
    if not peer or ":" not in peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[") or None
    return rest.rpartition(":")[0] or None


class GrpcProxy(grpc.GenericRpcHandler):
    def __init__(
        self,
        settings: Settings,
        authorizer: Authorizer,
        channel: aio.Channel,
        budget: ByteBudget,
        payload_log: PayloadLog | None = None,
    ):
        self.settings = settings
        self.authorizer = authorizer
        self.channel = channel
        self.budget = budget
        self.payload_log = payload_log
        self.largest_message = largest_grpc_message(budget.capacity, settings.max_body_bytes)
        self.lines = REFUSAL_LINES

    def service(self, handler_call_details):
        method = handler_call_details.method
        if method not in FORWARDED_METHODS:
            return None  # UNIMPLEMENTED, as a server without that method answers

        async def forward(requests, context: aio.ServicerContext) -> bytes:
            return await self._answer(method, requests, context)

        return grpc.stream_unary_rpc_method_handler(forward)

    async def _answer(self, method: str, requests, context: aio.ServicerContext) -> bytes:
        """The call's answer or its status, measured by method and code."""
        started = time.perf_counter()
        labels = grpc_route(method)
        code = "CANCELLED"  # unless the call ends otherwise: the client went away
        ending: tuple[grpc.StatusCode, str] | None = None
        with IN_FLIGHT.labels("grpc").track_inprogress():
            try:
                response = await self._forward(method, requests, context)
                code = "OK"
                return response
            except Answered as answered:
                ending = answered.code, answered.details
                code = answered.code.name
            finally:
                observe("grpc", labels.protocol, labels.route, code, started)
        # Aborted outside the `except`, keeping only the status: an exception raised or kept
        # there would hold the Answered one, and through its traceback every frame of the call
        # and the message it read, until the garbage collector's next full pass (measured: each
        # refused 48 MiB call left 48 MiB behind).
        await context.abort(*ending)
        raise AssertionError("abort raises")

    async def _forward(self, method: str, requests, context: aio.ServicerContext) -> bytes:
        hold: Hold | None = None
        try:
            try:
                metadata = checked_metadata(context.invocation_metadata() or ())
                identity: list[tuple[str, str]] = []
                if method in self.settings.public_grpc_methods:
                    # A probe's request message is empty: the client's is never read, so an
                    # anonymous caller cannot make the proxy buffer (or decompress) anything.
                    request = EMPTY_MESSAGE
                else:
                    tokens = [str(v) for k, v in metadata if k.lower() == "authorization"]
                    principal = await self.authorizer.authorize(one_credential(tokens))
                    identity = forwarded_headers.identity_headers(principal)
                    hold = await self._room_to_read()
                    request = await self._read(requests)  # only once the call may pass
                    hold.resize(GRPC_COPIES * len(request))  # at most what the read took
            except Refusal as refusal:
                self._refused(method, context, refusal)
            log = self.payload_log if logged_grpc(method) else None
            try:
                if log is None:
                    return await self._call(method, request, metadata, identity, context)
                call = event_id(next((str(v) for k, v in metadata if k == ID_HEADER), None))
                log.grpc_request(call, request)
                answer = await self._call(method, request, metadata, identity, context)
                log.grpc_response(call, answer)  # OK only: an error status raised Answered
                return answer
            finally:
                del request  # not kept by a traceback that outlives the call
        finally:
            # However the call ends: answered, refused, or cancelled by gRPC (the client
            # cancelled, its deadline passed) while it waited, read or was forwarded.
            if hold is not None:
                hold.release()

    async def _room_to_read(self) -> Hold:
        """Room in the memory budget for the largest message, which the call reads next (its
        size is not known before): RESOURCE_EXHAUSTED if none frees in time."""
        room = GRPC_COPIES * self.largest_message
        hold = await self.budget.take(room, READ_PATIENCE_SECONDS)
        if hold is None:
            raise self._over_budget()
        return hold

    def _over_budget(self) -> Refusal:
        return refusals.over_budget(
            f"the server is at its memory budget ({self.budget.capacity} bytes of requests in "
            "flight): try again shortly"
        )

    async def _call(
        self,
        method: str,
        request: bytes,
        metadata: tuple[tuple[str, str | bytes], ...],
        identity: list[tuple[str, str]],
        context: aio.ServicerContext,
    ) -> bytes:
        """The predictor's answer to `request`, or its status as `Answered`."""
        peer = peer_address(context.peer())
        trusted = self.settings.trusted_proxies
        forwarded = forwarded_headers.upstream_headers(metadata, peer, trusted) + identity
        remaining = context.time_remaining()
        timeout = self.settings.upstream_timeout_seconds
        if remaining is not None:
            timeout = min(timeout, remaining)
        call = self.channel.unary_unary(method)  # no serialisers: bytes in, bytes out
        ending: tuple[grpc.StatusCode, str] | None = None
        try:
            return await call(request, timeout=timeout, metadata=forwarded)
        except aio.AioRpcError as exc:
            # The status only: the error's traceback holds gRPC's call object, and the call
            # holds the request message.
            ending = exc.code(), exc.details() or ""
        finally:
            del request
        if ending[0] in UPSTREAM_FAILURES:
            UPSTREAM_ERRORS.labels("grpc", ending[0].name).inc()
        raise Answered(*ending)

    async def _read(self, requests) -> bytes:
        """The call's one request message and the end of its stream, within
        `CLIENT_BODY_TIMEOUT_SECONDS`. The stream is read to its end: gRPC's receiver of a
        stream left unfinished is closed later by the event loop, and that close never
        completes, so each such call would keep its state and its message (measured: the
        proxy grew by ~100 KB/s under gRPC load). A second message is refused, as a unary
        method's server refuses it."""
        patience = self.settings.client_body_timeout_seconds
        messages = aiter(requests)
        try:
            async with asyncio.timeout(patience):
                request = await anext(messages, None)
                extra = None if request is None else await anext(messages, None)
        except TimeoutError:
            raise refusals.request_timeout(
                f"the request message did not arrive within {patience:g} s"
            ) from None
        finally:
            # Refused or timed out with the stream unfinished: close it now, or it stays
            # suspended, holding the call and its messages (measured: ~150 KB a call kept).
            closing = getattr(messages, "aclose", None)
            if closing is not None:
                await closing()
        if request is None:
            raise refusals.invalid_argument("no request message")
        if extra is not None:
            raise refusals.invalid_argument("a unary method takes one request message")
        return request

    def _refused(self, method: str, context: aio.ServicerContext, refusal: Refusal) -> NoReturn:
        code = refusals.grpc_code(refusal)
        REFUSALS.labels("grpc", refusals.reason(refusal)).inc()
        self.lines.log(
            logging.INFO, "refused %s: %s %s (from %s)", method, code.name, refusal, context.peer()
        )
        raise Answered(code, refusal.description)


class Answered(Exception):
    """The call ends with this status: a refusal, or the predictor's own error status."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


MAX_STREAMS_PER_CONNECTION = 128


def grpc_server(settings: Settings, handler: GrpcProxy) -> aio.Server:
    limit = handler.largest_message  # a larger message is refused before it is buffered
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # Streams one connection may hold open at once, and how long a connection with
            # none may stay (gRPC clients reconnect by themselves after the GOAWAY).
            ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
            # No bandwidth-delay probing: it grows every stream's window, so that gRPC's core
            # takes in the messages of calls still waiting for room in the budget (measured:
            # 265 MiB against 193 for the same burst). A message being read still gets a
            # window of its whole size (core opens it for the read in progress).
            ("grpc.http2.bdp_probe", 0),
            ("grpc.max_connection_idle_ms", int(settings.client_idle_timeout_seconds * 1000)),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    host = settings.listen_host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    server.add_insecure_port(f"{host}:{settings.grpc_port}")
    return server
