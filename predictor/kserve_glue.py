"""Every touch of KServe's internals, in one module.

kserve 0.21 offers no public way to do four things this server needs: bind REST and gRPC to a
chosen host, put our routes before its own and drop its TimingMiddleware, build the gRPC
server with our servicer and interceptors, and keep binary BYTES tensors undecoded. Each needs
a private attribute or an overridden method. They are all here, and `RELIED_ON` names every one,
so that `tests/predictor/test_kserve_glue.py` fails loudly when a KServe upgrade removes one,
instead of the server breaking silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from concurrent import futures

import grpc
from fastapi import FastAPI
from google.protobuf.message import DecodeError
from grpc import aio
from kserve import ModelServer
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.infer_type import InferInput
from kserve.protocol.rest.server import RESTServer
from timing_asgi import TimingMiddleware
from uvicorn.importer import import_from_string

logger = logging.getLogger(__name__)

# (owner, attribute): class attributes and methods are checked on the class; instance
# attributes (set in `__init__`) on an instance or in the source of `__init__`.
RELIED_ON: tuple[tuple[type, str], ...] = (
    (RESTServer, "create_application"),  # overridden: our app
    (RESTServer, "start"),
    (RESTServer, "_add_middlewares"),
    (RESTServer, "_register_endpoints"),
    (RESTServer, "_add_exception_handlers"),
    (RESTServer, "config"),  # uvicorn.Config: host, forwarded_allow_ips
    (RESTServer, "dataplane"),
    (GRPCServer, "stop"),  # called by ModelServer.stop on SIGTERM, reads _server
    (GRPCServer, "_data_plane"),
    (GRPCServer, "_model_repository_extension"),
    (GRPCServer, "_port"),
    (GRPCServer, "_server"),  # read by GRPCServer.stop
    (ModelServer, "dataplane"),  # replaced by ours before any server is built
    (ModelServer, "registered_models"),
    (ModelServer, "_serve"),
    (ModelServer, "_rest_server"),  # read by ModelServer.stop
    (ModelServer, "_grpc_server"),
    (InferInput, "_raw_data"),  # binary tensors, as kserve keeps them
)
APP = "kserve.model_server:app"  # KServe's FastAPI app, which its RESTServer serves


def raw_data(tensor: InferInput) -> bytes | None:
    """A tensor's binary payload (gRPC `raw_input_contents`, REST binary extension), if any.
    kserve has no public accessor that leaves BYTES undecoded (`as_numpy` decodes UTF-8)."""
    raw = getattr(tensor, "_raw_data", None)
    return bytes(raw) if raw is not None else None


def set_raw_data(tensor: InferInput, raw: bytes) -> None:
    tensor._raw_data = raw


def bracketed(host: str) -> str:
    """A host as it goes before `:port`: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class RestServer(RESTServer):
    """KServe's REST server bound to `host`, trusting forwarded headers from loopback only, with
    `install(app, dataplane)` run before KServe registers its own routes."""

    def __init__(
        self,
        host: str,
        install: Callable[[FastAPI, object], None],
        finish: Callable[[FastAPI], None],
        *args,
        **kwargs,
    ):
        super().__init__(APP, *args, **kwargs)
        self.config.host = host
        # X-Forwarded-For / -Proto are believed from loopback only: from the auth proxy, which
        # builds them from the peer it saw. Whatever a client writes there never gets this far.
        self.config.forwarded_allow_ips = ["127.0.0.1", "::1"]
        self._install, self._finish = install, finish

    def create_application(self) -> None:
        app = import_from_string(APP)
        self._install(app, self.dataplane)
        self._add_middlewares(app)
        # KServe's TimingMiddleware logs two trace lines per request and calls getrusage() for
        # the whole process around each one (a sixth of the event loop's time under load,
        # measured); its "cpu time" counts every thread's work, not the request's.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        self._register_endpoints(app)
        self._add_exception_handlers(app)
        self._finish(app)


class GrpcServer(GRPCServer):
    """KServe's gRPC server with our servicer class, interceptors, message limit and host."""

    def __init__(self, host: str, servicer, interceptors, max_message_bytes: int, *args, **kw):
        super().__init__(*args, **kw)
        self.host, self.servicer = host, servicer
        self.interceptors, self.max_message_bytes = interceptors, max_message_bytes

    async def start(self, max_workers: int) -> None:
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=self.interceptors,
            options=[
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ],
        )
        servicer = self.servicer(self._data_plane, self._model_repository_extension)
        self._server.add_generic_rpc_handlers((parsing_handlers(servicer),))
        address = f"{bracketed(self.host)}:{self._port}"
        self._server.add_insecure_port(address)
        logger.info("Starting gRPC server on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]


def parsing_handlers(servicer) -> grpc.GenericRpcHandler:
    """The servicer's methods, each parsing its own request: the generated registration
    deserialises before any handler runs, and a message that is not valid protobuf then ends
    as UNKNOWN with a traceback in the log; here it is INVALID_ARGUMENT and one line."""
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _parsed(getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in SERVICE.methods
    }
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


def _parsed(behaviour, request_type):
    async def parse_then_call(raw: bytes, context: aio.ServicerContext):
        try:
            request = request_type.FromString(raw)
        except DecodeError:
            logger.warning("refused a %s that is not valid protobuf", request_type.__name__)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"not a valid {request_type.__name__} message"
            )
        return await behaviour(request, context)

    return parse_then_call


def use_dataplane(server: ModelServer, dataplane_class: type) -> None:
    """Replace the data plane KServe made in `ModelServer.__init__` with ours, on the same
    model registry; the REST and gRPC servers are built from it afterwards (`start`)."""
    server.dataplane = dataplane_class(model_registry=server.registered_models)


def attach(server: ModelServer, rest: RestServer, grpc: GrpcServer | None) -> None:
    """Where `ModelServer.stop` finds the servers to shut down on SIGTERM."""
    server._rest_server, server._grpc_server = rest, grpc


def serving(server: ModelServer) -> Coroutine:
    """The coroutine that runs every coroutine in `server.servers` until stopped."""
    return server._serve()
