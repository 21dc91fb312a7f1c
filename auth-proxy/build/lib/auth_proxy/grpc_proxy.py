"""The gRPC door: every method of `inference.GRPCInferenceService`, forwarded as raw bytes.

A generic handler with no (de)serialisers: messages pass through unparsed and unchanged. The
token comes from the `authorization` metadata; the probes' methods pass without one. The
caller's deadline is passed on, and the predictor's status comes back as it was.
"""

from __future__ import annotations

import logging

import grpc
from grpc import aio

from . import answers
from .answers import Refusal
from .auth import Authorizer
from .metrics import REQUESTS
from .settings import Settings

logger = logging.getLogger(__name__)

SERVICE = "/inference.GRPCInferenceService/"
DROPPED_METADATA = frozenset({"authorization", "x-auth-subject", "x-auth-scopes"})


class GrpcProxy(grpc.GenericRpcHandler):
    def __init__(self, settings: Settings, authorizer: Authorizer, channel: aio.Channel):
        self.settings = settings
        self.authorizer = authorizer
        self.channel = channel

    def service(self, handler_call_details):
        method = handler_call_details.method
        if not method.startswith(SERVICE):
            return None  # UNIMPLEMENTED, as a server without that service answers

        async def forward(request: bytes, context: aio.ServicerContext) -> bytes:
            return await self._forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(forward)

    async def _forward(self, method: str, request: bytes, context: aio.ServicerContext) -> bytes:
        metadata = tuple(context.invocation_metadata() or ())
        forwarded = [(k, v) for k, v in metadata if k.lower() not in DROPPED_METADATA]
        try:
            if method not in self.settings.public_grpc_methods:
                authorization = next((v for k, v in metadata if k.lower() == "authorization"), None)
                principal = await self.authorizer.authorize(authorization)
                forwarded += [
                    ("x-auth-subject", principal.subject),
                    ("x-auth-scopes", " ".join(principal.scopes)),
                ]
        except Refusal as refusal:
            code = answers.grpc_code(refusal)
            REQUESTS.labels("grpc", code.name).inc()
            logger.info("refused %s: %s %s", method, code.name, refusal)
            await context.abort(code, refusal.description)
        call = self.channel.unary_unary(method)  # no serialisers: bytes in, bytes out
        remaining = context.time_remaining()
        try:
            response = await call(request, timeout=remaining, metadata=forwarded)
        except aio.AioRpcError as exc:
            REQUESTS.labels("grpc", exc.code().name).inc()
            await context.abort(exc.code(), exc.details() or "")
        REQUESTS.labels("grpc", "OK").inc()
        return response


def grpc_server(settings: Settings, handler: GrpcProxy) -> aio.Server:
    limit = settings.max_body_bytes
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    host = settings.listen_host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    server.add_insecure_port(f"{host}:{settings.grpc_port}")
    return server
